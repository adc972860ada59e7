/**
 * Why `prune` refused to remove a layer's units:
 *
 * - `dead`: every unit of the layer emits a constant, so a model output after
 *   it no longer depends on the input (the L1 penalty killed the layer, or a
 *   caller zeroed it);
 * - `unused`: its units vary, but the unit layer after it reads none of them
 *   (its weights from them are zero, or its own groups are all dead).
 */
export type DisconnectedModelCode = 'dead' | 'unused';

/** Set on every DisconnectedModelError by every copy of this package (see its `Symbol.hasInstance`). */
const BRAND = Symbol.for('normprune.DisconnectedModelError');

/**
 * `prune`'s refusal of a model whose surgery would disconnect it: a layer
 * left without a live unit with no model output after it that still depends
 * on the input. The message names the layer and the fix; the fields say the
 * same without reading it.
 *
 * ```ts
 * try {
 *   model = prune(model).model;
 * } catch (e) {
 *   if (!(e instanceof DisconnectedModelError)) throw e;
 *   console.error(`layer ${e.layer} died whole (${e.detail}); retrain with a smaller lambda`);
 * }
 * ```
 */
export class DisconnectedModelError extends Error {
  /**
   * `instanceof` that also holds for an error made by another copy of this package in the same
   * process (its CommonJS and ES module builds both loaded, or two installed versions of it); a
   * subclass's `instanceof` stays a plain prototype check.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return (
      Function.prototype[Symbol.hasInstance].call(this, value) ||
      (this === DisconnectedModelError && typeof value === 'object' && value !== null && BRAND in value)
    );
  }

  /** Whether the layer's units are all dead or only unused. */
  readonly code: DisconnectedModelCode;
  /** The layer named: the one whose units are all dead (`dead`), or the last one left unused (`unused`). */
  readonly layer: string;
  /** Every layer left without a live unit, in model order: `layer` and the ones it empties. */
  readonly emptied: string[];
  /**
   * What removing the units would do, without the message's prefix and advice
   * (`the model's output no longer depends on its input, and removing them would disconnect the model (...)`),
   * for a caller that wraps the error with advice of its own.
   */
  readonly detail: string;

  /** Builds the error; `message` is the whole message, `detail` its middle part. */
  constructor(
    found: { code: DisconnectedModelCode; layer: string; emptied: string[]; detail: string },
    message: string,
  ) {
    super(message);
    // With a target that compiles classes to functions, Error() would leave the prototype Error's.
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'DisconnectedModelError';
    Object.defineProperty(this, BRAND, { value: true });
    this.code = found.code;
    this.layer = found.layer;
    this.emptied = [...found.emptied];
    this.detail = found.detail;
  }
}

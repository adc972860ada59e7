// Saving a model to memory, for the save / load round trips of every package's tests (not published).
import * as tf from '@tensorflow/tfjs-core';

/** What `model.save` of tfjs-layers takes: a LayersModel, without this file importing tfjs-layers. */
interface Savable {
  save(handler: tf.io.IOHandler, config?: tf.io.SaveConfig): Promise<tf.io.SaveResult>;
}

/**
 * The artifacts `model.save` writes (`config`: `{ includeOptimizer: true }`, say), kept in memory;
 * `tfl.loadLayersModel(tf.io.fromMemory(artifacts))` loads them back.
 */
export async function saveInMemory(model: Savable, config?: tf.io.SaveConfig): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    config,
  );
  if (saved === undefined) throw new Error('saveInMemory: model.save wrote nothing');
  return saved;
}

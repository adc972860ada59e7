// The oldest tfjs the wasm kernels were measured to work with
// (tools/tfjs-versions/results.json): older versions are refused, naming both.
import * as tf from '@tensorflow/tfjs-core';
import { checkTfjsVersion } from '../src/kernels/index.js';

describe('checkTfjsVersion', () => {
  it.each(['4.5.0', '4.0.0', '3.21.0', '4.5.9'])(
    'refuses tfjs %s, naming it, the version needed and the fix',
    (found) => {
      expect(() => checkTfjsVersion('registerWasmTrainingKernels()', found)).toThrow(
        new RegExp(
          `^normprune: registerWasmTrainingKernels\\(\\) needs TensorFlow.js 4\\.6\\.0 or later, found @tensorflow/tfjs-core ${found.replace(/\./g, '\\.')}: .*AvgPoolGrad.*install @tensorflow/tfjs-core, tfjs-layers, tfjs-backend-cpu and tfjs-backend-wasm 4\\.6\\.0 or later`,
        ),
      );
    },
  );

  it.each(['4.6.0', '4.10.0', '4.22.0', '4.23.0-rc.0', '5.0.0'])('accepts tfjs %s', (found) => {
    expect(() => checkTfjsVersion('x', found)).not.toThrow();
  });

  it('registerWasmTrainingKernels refuses an older tfjs, before it touches the kernel registry', () => {
    jest.isolateModules(() => {
      jest.doMock('@tensorflow/tfjs-core', () => ({
        ...jest.requireActual('@tensorflow/tfjs-core'),
        version_core: '4.5.0',
      }));
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const kernels = require('../src/kernels/index.js') as typeof import('../src/kernels/index.js');
      expect(() => kernels.registerWasmTrainingKernels()).toThrow(
        /needs TensorFlow.js 4\.6\.0 or later, found @tensorflow\/tfjs-core 4\.5\.0/,
      );
    });
  });

  it('reads the installed tfjs-core by default', () => {
    expect(() => checkTfjsVersion('x')).not.toThrow();
    expect(tf.version_core).toMatch(/^4\./);
  });
});

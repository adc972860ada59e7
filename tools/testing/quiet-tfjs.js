// Jest setup file (jest.preset.js): tfjs-backend-cpu prints a one-time
// "install our node backend" notice on its first tensor under Node. Every test
// file runs in a fresh module registry and would print it again, burying the
// test output; tfjs-node cannot be installed on the CI machine anyway. The
// notice is only muted here, in tests; users of the packages still see it.
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
// The engine builds a new backend instance when it first picks its default
// one, so make the muted instance the active one (the default it would pick).
void tf.setBackend('cpu');
const cpu = tf.findBackend('cpu');
if (cpu && 'firstUse' in cpu) cpu.firstUse = false;

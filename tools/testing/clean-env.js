// Jest setup file (jest.preset.js): the tests run with NORMPRUNE_BACKEND and
// NORMPRUNE_THREADS unset, whatever the developer's shell exports. initBackend
// (and through it the CLI) reads both from process.env, so a shell with
// NORMPRUNE_BACKEND=cpu or NORMPRUNE_THREADS=1 turned the tests of its defaults
// and of its `prefer` and `threads` options red, and the packed-install scripts
// and CLI runs the tests start inherit this environment. Jest gives each test
// file its own copy of process.env, so this changes nothing outside the tests;
// the tests of the variables set them themselves.
delete process.env.NORMPRUNE_BACKEND;
delete process.env.NORMPRUNE_THREADS;

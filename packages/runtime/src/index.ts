export { fileSystem } from './file-system.js';

export * from './protocol.ts';
export * from './hash.ts';
export * from './paths.ts';
export * from './posix-names.ts';
export * from './text.ts';
export * from './format.ts';
export * from './env.ts';
export * from './process.ts';
export * from './schedule.ts';

export * from './chunking/index.ts';
export * from './assemble-format.ts';
export * from './duration.ts';
export * from './restore-jobs.ts';
export * from './upload-hint.ts';

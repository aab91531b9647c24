export * from './gear-table.ts';
export * from './content-chunker.ts';
export * from './chunking-policy.ts';

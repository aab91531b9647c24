export * from './gear-table.ts';
export * from './content-chunker.ts';

// The part of picomatch 2.x the scanner uses (the package ships no types).
declare module 'picomatch' {
  interface PicomatchOptions {
    dot?: boolean;
    flags?: string;
  }
  const picomatch: {
    makeRe(pattern: string, options?: PicomatchOptions): RegExp;
  };
  export default picomatch;
}

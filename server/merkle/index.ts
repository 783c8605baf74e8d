export * from './rfc9162.ts';
export * from './anchor.ts';

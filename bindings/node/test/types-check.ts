// Compile-time proof that the hand-written wrapper types (index.d.ts) fit
// the declarations napi generated from the Rust signatures (native.d.ts).
import type * as native from '../native';
import type { EmitEvent, CodeMeta, QueueStats, IdWithSource, CallOptions } from 'fasten';

type Assignable<From, To> = From extends To ? true : false;
const emitFits: Assignable<EmitEvent, native.EventInput> = true;
const codeFits: Assignable<CodeMeta & { code: string }, native.CodeInput> = true;
const idFits: Assignable<native.IdWithSource, IdWithSource> = true;
type NativeEngine = InstanceType<typeof native.Engine>;
const emitReturns: Assignable<ReturnType<NativeEngine['emit']>, string> = true;
const readerFits: Assignable<{ tokens: string[] }, native.ReaderOptions> = true;
const callFits: Assignable<CallOptions & { kind: string; name: string; durationMs: number }, native.AgentCallInput> = true;
export const checks: boolean[] = [emitFits, codeFits, idFits, emitReturns, readerFits, callFits];
export type Stats = QueueStats;

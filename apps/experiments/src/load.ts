// How busy the machine is: a latency median taken while other processes compete for the CPU
// is inflated. No tfjs here, so that reports can use it.
import { availableParallelism, loadavg } from 'node:os';

/** How busy the machine was: the 1-minute load average and the number of cores. */
export interface CpuLoad {
  loadAverage: number;
  cores: number;
}

/** The machine's load now (the load average is 0 where the OS does not report one, as on Windows). */
export function cpuLoad(): CpuLoad {
  return { loadAverage: loadavg()[0], cores: availableParallelism() };
}

/**
 * Whether other work competed with a measurement for the CPU: a load average more than half a
 * core above the number of cores. A median latency taken then is inflated, the longer call's
 * most (it is preempted more often), so a speedup reads too large.
 */
export function oversubscribed(load: CpuLoad): boolean {
  return load.loadAverage > load.cores + 0.5;
}

/** `1-minute load average was 1.1 on 2 cores`: how the notes and reports name a load. */
export function loadText(load: CpuLoad): string {
  return `1-minute load average was ${load.loadAverage.toFixed(1)} on ${load.cores} cores`;
}

/** The warning a run and `eval` print when `load` was `oversubscribed`; undefined otherwise. */
export function loadWarning(load: CpuLoad): string | undefined {
  if (!oversubscribed(load)) return undefined;
  return `the ${loadText(load)} while the latencies were measured; other processes competed for the CPU, so the latencies (the longer call's most) may be inflated`;
}

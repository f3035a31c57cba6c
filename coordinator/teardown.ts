// Releases what a run acquired, last acquired first, on every way out of it: each step
// runs exactly once, and one that fails does not keep the others from running.

export class Teardown {
  private readonly steps: { name: string; release: () => unknown }[] = [];

  /** Registers the release of something just acquired. */
  add(name: string, release: () => unknown): void {
    this.steps.push({ name, release });
  }

  /** Runs the registered steps, newest first; then throws if any failed, naming each. */
  async run(): Promise<void> {
    const failures: string[] = [];
    // Popping (not iterating) makes a second run() release nothing twice.
    for (let step = this.steps.pop(); step; step = this.steps.pop()) {
      try {
        await step.release();
      } catch (e) {
        failures.push(`${step.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (failures.length > 0) throw new Error(`releasing the run's resources failed: ${failures.join('; ')}`);
  }
}

// Types of scripts/system-deps.mjs (plain JS: it runs before the build).

export interface SystemPackage {
  name: string;
  /** Each file the tests run from the package, as the paths they accept for it. */
  files: string[][];
}
export const SYSTEM_PACKAGES: SystemPackage[];
export function isInstalled(pkg: SystemPackage): boolean;
export function ensureSystemPackages(options?: {
  packages?: SystemPackage[];
  installed?: (pkg: SystemPackage) => boolean;
  isRoot?: boolean;
  hasAptGet?: boolean;
  run?: (command: string, args: string[]) => number;
  log?: (line: string) => void;
}): number;

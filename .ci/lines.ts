// The library's line budget: counts lines of code (not blank, not comments) in mod.ts and the
// library folders, prints the count, and exits 1 above the budget. Run by `deno task test`.
const BUDGET = 6500;
const ROOTS = ["mod.ts", "tensor", "autograd", "nn", "dpo", "rlhf"];

function* files(path: string): Generator<string> {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    return; // a library folder that does not exist yet
  }
  if (info.isFile && path.endsWith(".ts")) yield path;
  if (info.isDirectory) { for (const e of Deno.readDirSync(path)) yield* files(`${path}/${e.name}`); }
}

/** Lines with code on them once comments are removed (strings and templates are respected). */
export function codeLines(src: string): number {
  let code = "", i = 0;
  let quote = "";
  while (i < src.length) {
    const c = src[i], two = src.slice(i, i + 2);
    if (quote) {
      code += c;
      if (c === "\\") code += src[++i] ?? "";
      else if (c === quote) quote = "";
      i++;
    } else if (two === "//") {
      while (i < src.length && src[i] !== "\n") i++;
    } else if (two === "/*") {
      const end = src.indexOf("*/", i + 2);
      const body = src.slice(i, end < 0 ? src.length : end + 2);
      code += body.replace(/[^\n]/g, ""); // keep the line breaks, drop the text
      i += body.length;
    } else {
      if (c === '"' || c === "'" || c === "`") quote = c;
      code += c;
      i++;
    }
  }
  return code.split("\n").filter((l) => l.trim() !== "").length;
}

if (import.meta.main) {
  let total = 0;
  for (const root of ROOTS) for (const f of files(root)) total += codeLines(Deno.readTextFileSync(f));
  console.log(`library: ${total} lines of code (budget ${BUDGET})`);
  if (total > BUDGET) {
    console.error(`line budget exceeded by ${total - BUDGET}: make the library smaller`);
    Deno.exit(1);
  }
}

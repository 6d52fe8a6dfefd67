/**
 * The tape: a dynamic graph of nodes, each knowing its inputs and how to turn the gradient of its
 * output into gradients of its inputs. It knows nothing about particular ops — each op registers
 * its backward closure when it runs (see tensor.ts).
 */

/** What an op leaves on the tape. `backward` returns one gradient (or null) per input. */
export interface TapeNode<T> {
  inputs: T[];
  backward: (grad: T) => (T | null)[];
}

let enabled = true;

/** Whether ops currently record to the tape. */
export function isGradEnabled(): boolean {
  return enabled;
}

/** Run `fn` without recording anything to the tape (like `torch.no_grad`). */
export function noGrad<T>(fn: () => T): T {
  const prev = enabled;
  enabled = false;
  let out: T | undefined;
  try {
    out = fn();
    return out instanceof Promise ? out.finally(() => (enabled = prev)) as T : out;
  } finally {
    if (!(out instanceof Promise)) enabled = prev; // a promise restores it when it settles
  }
}

/** Reverse-mode sweep from `root` (seeded with `seed`): visits nodes in reverse topological order,
 * sums gradients arriving at each tensor, and hands each leaf's total to `leaf`. */
export function runBackward<T extends object>(
  root: T,
  seed: T,
  nodeOf: (t: T) => TapeNode<T> | null,
  add: (a: T, b: T) => T,
  leaf: (t: T, grad: T) => void,
): void {
  // Iterative DFS post-order (deep graphs would overflow recursion).
  const order: T[] = [], seen = new Set<T>([root]), stack: [T, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1], inputs = nodeOf(top[0])?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (!seen.has(next)) stack.push([next, 0]);
      seen.add(next);
    } else order.push(stack.pop()![0]);
  }
  const grads = new Map<T, T>([[root, seed]]);
  noGrad(() => {
    for (const t of order.reverse()) {
      const g = grads.get(t), node = nodeOf(t);
      if (!g) continue;
      grads.delete(t);
      if (!node) leaf(t, g);
      node?.backward(g).forEach((gk, k) => {
        const x = node.inputs[k], prev = grads.get(x);
        if (gk) grads.set(x, prev ? add(prev, gk) : gk);
      });
    }
  });
}

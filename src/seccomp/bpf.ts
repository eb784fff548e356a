/**
 * A small assembler for classic BPF as seccomp runs it: the handful of
 * instructions a filter needs, symbolic labels, and the layout that turns
 * them into `struct sock_filter` records (u16 code, u8 jt, u8 jf, u32 k,
 * in the machine's byte order, little-endian on every ABI dokrust has).
 *
 * Conditional jumps reach at most 255 instructions ahead (jt and jf are
 * 8 bits).  A jump whose target lies further gets a trampoline: an
 * unconditional `ja` (32-bit offset) placed right after it, which the
 * short branch reaches instead.  Every jump in BPF goes forward, so the
 * layout only grows while trampolines are added and settles in a few
 * passes.
 */
import { UsageError } from "../errors.ts";

/** Instruction codes (linux/bpf_common.h). */
export const BPF = {
  LD_W_ABS: 0x20, // A = *(u32 *)(data + k)
  ALU_AND_K: 0x54, // A &= k
  JA: 0x05, // pc += k
  JEQ_K: 0x15, // pc += (A == k) ? jt : jf
  JGT_K: 0x25, // pc += (A > k) ? jt : jf
  JGE_K: 0x35, // pc += (A >= k) ? jt : jf
  JSET_K: 0x45, // pc += (A & k) ? jt : jf
  RET_K: 0x06, // return k
} as const;

/** The kernel refuses longer programs (BPF_MAXINSNS). */
export const MAX_INSNS = 4096;

/** A position in the program, placed with `Assembler.place`. */
export interface Label {
  readonly id: number;
}

type JumpCode = typeof BPF.JEQ_K | typeof BPF.JGT_K | typeof BPF.JGE_K | typeof BPF.JSET_K;

/** A conditional jump's target: a label, or the next instruction. */
export type Target = Label | "next";

/** jt/jf of an instruction that does not jump, or jumps to the next one. */
const NEXT = -1;

/**
 * Builds one program; `assemble()` lays it out.  Instructions live in
 * parallel arrays (code, k, and for jumps the label ids of both targets),
 * which keeps the layout passes cheap while the engine is still cold.
 */
export class Assembler {
  #code: number[] = [];
  #k: number[] = [];
  #jt: number[] = [];
  #jf: number[] = [];
  /** Label id → index of the instruction it stands before. */
  #labelAt: number[] = [];

  label(): Label {
    return { id: this.#labelAt.push(-1) - 1 };
  }

  place(label: Label): void {
    this.#labelAt[label.id] = this.#code.length;
  }

  /** A = the 32-bit word at `offset` of struct seccomp_data. */
  load(offset: number): void {
    this.#push(BPF.LD_W_ABS, offset, NEXT, NEXT);
  }

  and(k: number): void {
    this.#push(BPF.ALU_AND_K, k, NEXT, NEXT);
  }

  ret(k: number): void {
    this.#push(BPF.RET_K, k, NEXT, NEXT);
  }

  jump(code: JumpCode, k: number, jt: Target, jf: Target): void {
    this.#push(code, k, jt === "next" ? NEXT : jt.id, jf === "next" ? NEXT : jf.id);
  }

  #push(code: number, k: number, jt: number, jf: number): void {
    this.#code.push(code);
    this.#k.push(k >>> 0);
    this.#jt.push(jt);
    this.#jf.push(jf);
  }

  /** Lay the program out: struct sock_filter records as bytes. */
  assemble(): Uint8Array {
    const n = this.#code.length;
    for (const at of this.#labelAt) if (at < 0) throw new Error("bpf: a label was never placed");
    // far[i]: bit 0, the true branch needs a trampoline; bit 1, the false one.
    const far = new Uint8Array(n);
    const pos = new Int32Array(n + 1);
    for (;;) {
      let pc = 0;
      for (let i = 0; i < n; i++) {
        pos[i] = pc;
        pc += 1 + (far[i]! & 1) + (far[i]! >> 1);
      }
      pos[n] = pc;
      if (!this.#growFarJumps(pos, far)) break;
    }
    if (pos[n]! > MAX_INSNS) {
      const why = `more than the kernel's limit of ${MAX_INSNS}`;
      throw new UsageError(`seccomp: the filter needs ${pos[n]} instructions, ${why}`);
    }
    return this.#encode(pos, far);
  }

  /** Where target `id` of instruction i lands, counted from the instruction after i. */
  #distance(pos: Int32Array, i: number, id: number): number {
    const to = id === NEXT ? pos[i + 1]! : pos[this.#labelAt[id]!]!;
    const distance = to - pos[i]! - 1;
    if (distance < 0) throw new Error("bpf: backward jump");
    return distance;
  }

  /** Give trampolines to the conditional jumps that cannot reach; whether any changed. */
  #growFarJumps(pos: Int32Array, far: Uint8Array): boolean {
    let changed = false;
    for (let i = 0; i < far.length; i++) {
      const code = this.#code[i]!;
      if ((code & 0x07) !== 0x05) continue;
      if (!(far[i]! & 1) && this.#distance(pos, i, this.#jt[i]!) > 255) {
        far[i]! |= 1;
        changed = true;
      }
      if (!(far[i]! & 2) && this.#distance(pos, i, this.#jf[i]!) > 255) {
        far[i]! |= 2;
        changed = true;
      }
    }
    return changed;
  }

  /**
   * Write the records.  A jump with trampolines is `jcc k, jt, jf`
   * followed by `ja T` (when the true side is far) and `ja F` (when the
   * false side is far); the short branches point at the trampolines, the
   * others skip them.
   */
  #encode(pos: Int32Array, far: Uint8Array): Uint8Array {
    const out = new Uint8Array(pos[far.length]! * 8);
    const view = new DataView(out.buffer);
    const emit = (pc: number, code: number, jt: number, jf: number, k: number) => {
      view.setUint16(pc * 8, code, true);
      view.setUint8(pc * 8 + 2, jt);
      view.setUint8(pc * 8 + 3, jf);
      view.setUint32(pc * 8 + 4, k >>> 0, true);
    };
    for (let i = 0; i < far.length; i++) {
      const code = this.#code[i]!;
      const pc = pos[i]!;
      if ((code & 0x07) !== 0x05) emit(pc, code, 0, 0, this.#k[i]!);
      else {
        const [farT, farF] = [far[i]! & 1, far[i]! >> 1];
        const t = this.#distance(pos, i, this.#jt[i]!);
        const f = this.#distance(pos, i, this.#jf[i]!);
        emit(pc, code, farT ? 0 : t, farF ? farT : f, this.#k[i]!);
        // A trampoline's own offset counts from the instruction after it.
        if (farT) emit(pc + 1, BPF.JA, 0, 0, t - 1);
        if (farF) emit(pc + 1 + farT, BPF.JA, 0, 0, f - 1 - farT);
      }
    }
    return out;
  }
}

//! Classic BPF (linux/filter.h): the instruction, the opcode parts, and a writer that keeps the
//! jumps still to patch. The port filter ([`crate::filter`]) and the fanout steering program
//! ([`crate::steer`]) are written with it; and an interpreter that runs what they write as the
//! kernel's does (`___bpf_prog_run` after `bpf_convert_filter`): the shards that take one
//! queue each run the fanout program on every frame to find its owner ([`crate::handoff`]),
//! and the tests check the programs with it.

/// One classic BPF instruction (`struct sock_filter`, linux/filter.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Instructions to skip when a condition holds.
    pub jt: u8,
    /// Instructions to skip when it does not.
    pub jf: u8,
    /// The constant operand.
    pub k: u32,
}

// Opcode parts (linux/bpf_common.h, linux/filter.h).
pub(crate) const BPF_LD: u16 = 0x00;
pub(crate) const BPF_LDX: u16 = 0x01;
pub(crate) const BPF_ST: u16 = 0x02;
pub(crate) const BPF_ALU: u16 = 0x04;
pub(crate) const BPF_JMP: u16 = 0x05;
pub(crate) const BPF_RET: u16 = 0x06;
pub(crate) const BPF_MISC: u16 = 0x07;
pub(crate) const BPF_W: u16 = 0x00;
pub(crate) const BPF_H: u16 = 0x08;
pub(crate) const BPF_B: u16 = 0x10;
pub(crate) const BPF_ABS: u16 = 0x20;
pub(crate) const BPF_IND: u16 = 0x40;
pub(crate) const BPF_MEM: u16 = 0x60;
pub(crate) const BPF_MSH: u16 = 0xa0;
pub(crate) const BPF_ADD: u16 = 0x00;
pub(crate) const BPF_MUL: u16 = 0x20;
pub(crate) const BPF_AND: u16 = 0x50;
pub(crate) const BPF_RSH: u16 = 0x70;
pub(crate) const BPF_XOR: u16 = 0xa0;
pub(crate) const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JSET: u16 = 0x40;
pub(crate) const BPF_K: u16 = 0x00;
pub(crate) const BPF_X: u16 = 0x08;
pub(crate) const BPF_A: u16 = 0x10;
pub(crate) const BPF_TAX: u16 = 0x00;
/// Loads at `SKF_NET_OFF + k` read from the network header, wherever the packet's data starts
/// (a socket filter sees the link header first, a fanout program the network header).
pub(crate) const SKF_NET_OFF: u32 = (-0x0010_0000i32) as u32;
/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: a half-word load there gives `skb->protocol`, the
/// EtherType (the inner one when the driver took a VLAN tag off).
pub(crate) const SKF_AD_PROTOCOL: u32 = (-0x1000i32) as u32;
/// Scratch memory slots (`BPF_MEMWORDS`).
pub(crate) const MEMWORDS: u32 = 16;
/// The most instructions a program holds (`BPF_MAXINSNS`).
pub(crate) const MAXINSNS: usize = 4096;

/// A classic BPF program being written, with the jumps still to patch.
#[derive(Default)]
pub(crate) struct Cbpf {
    pub(crate) code: Vec<SockFilter>,
    /// Unconditional jumps patched together later (the filter's `Own` checks).
    pub(crate) pending: Vec<usize>,
    /// A jump that did not fit its 8 bits.
    pub(crate) overflow: bool,
}

impl Cbpf {
    pub(crate) fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) {
        self.code.push(SockFilter { code, jt, jf, k });
    }

    /// `ld{,h,b} [k]`.
    pub(crate) fn ld(&mut self, size: u16, off: u32) {
        self.push(BPF_LD | size | BPF_ABS, 0, 0, off);
    }

    /// `ld{,h,b} [x + k]`.
    pub(crate) fn ld_ind(&mut self, size: u16, off: u32) {
        self.push(BPF_LD | size | BPF_IND, 0, 0, off);
    }

    /// `ldx 4 * ([k] & 0xf)`: an IPv4 header's length.
    pub(crate) fn ldx_msh(&mut self, off: u32) {
        self.push(BPF_LDX | BPF_B | BPF_MSH, 0, 0, off);
    }

    /// `A <op>= k`.
    pub(crate) fn alu_k(&mut self, op: u16, k: u32) {
        self.push(BPF_ALU | op | BPF_K, 0, 0, k);
    }

    /// `A <op>= X`.
    pub(crate) fn alu_x(&mut self, op: u16) {
        self.push(BPF_ALU | op | BPF_X, 0, 0, 0);
    }

    /// `X = A`.
    pub(crate) fn tax(&mut self) {
        self.push(BPF_MISC | BPF_TAX, 0, 0, 0);
    }

    /// `M[slot] = A`.
    pub(crate) fn st(&mut self, slot: u32) {
        self.push(BPF_ST, 0, 0, slot);
    }

    /// `X = M[slot]`.
    pub(crate) fn ldx_mem(&mut self, slot: u32) {
        self.push(BPF_LDX | BPF_W | BPF_MEM, 0, 0, slot);
    }

    pub(crate) fn jeq_else(&mut self, k: u32, jt: u8, jf: u8) {
        self.push(BPF_JMP | BPF_JEQ | BPF_K, jt, jf, k);
    }

    /// `jset #k`, with both branches to patch or given.
    pub(crate) fn jset_else(&mut self, k: u32, jt: u8, jf: u8) {
        self.push(BPF_JMP | BPF_JSET | BPF_K, jt, jf, k);
    }

    /// `ja` to be patched.
    pub(crate) fn ja(&mut self) -> usize {
        self.push(BPF_JMP | BPF_JA, 0, 0, 0);
        self.code.len() - 1
    }

    pub(crate) fn ret(&mut self, k: u32) {
        self.push(BPF_RET | BPF_K, 0, 0, k);
    }

    /// `ret a`.
    pub(crate) fn ret_a(&mut self) {
        self.push(BPF_RET | BPF_A, 0, 0, 0);
    }

    /// Points the conditional jump at `at` to `target` (its true branch, or false).
    pub(crate) fn patch(&mut self, at: usize, target: usize, on_true: bool) {
        let off = target - at - 1;
        let Ok(off) = u8::try_from(off) else {
            self.overflow = true;
            return;
        };
        if let Some(i) = self.code.get_mut(at) {
            if on_true {
                i.jt = off;
            } else {
                i.jf = off;
            }
        }
    }

    /// Points the `ja` at `at` to `target`.
    pub(crate) fn patch_ja(&mut self, at: usize, target: usize) {
        if let Some(i) = self.code.get_mut(at) {
            i.k = (target - at - 1) as u32;
        }
    }

    /// Points the pending `ja`s at the next instruction.
    pub(crate) fn patch_pending(&mut self) {
        let target = self.code.len();
        for at in std::mem::take(&mut self.pending) {
            self.patch_ja(at, target);
        }
    }

    /// Points the conditional jumps at `misses` (their false branches) to the next instruction.
    pub(crate) fn patch_misses(&mut self, misses: Vec<usize>) {
        let next = self.code.len();
        for at in misses {
            self.patch(at, next, false);
        }
    }

    /// The program, or `None` when it does not fit (too long, or a jump too far).
    pub(crate) fn finish(self) -> Option<Vec<SockFilter>> {
        (self.code.len() <= MAXINSNS && !self.overflow).then_some(self.code)
    }
}

/// Runs a classic BPF program over an untagged Ethernet frame the way the kernel does, for the
/// instructions this crate writes; `None` for any other instruction. `net_start` says where the
/// program's data begins: 0 for a socket filter on a `SOCK_RAW` packet socket (the link header),
/// 14 for a fanout program (the network header). A load past the frame ends the program with 0,
/// as in the kernel.
pub(crate) fn run(prog: &[SockFilter], pkt: &[u8], net_start: usize) -> Option<u32> {
    let load = |off: u32, n: usize| -> Option<u32> {
        let at = if (SKF_NET_OFF..SKF_AD_PROTOCOL).contains(&off) {
            14 + (off - SKF_NET_OFF) as usize
        } else if off == SKF_AD_PROTOCOL {
            12
        } else {
            net_start + off as usize
        };
        let b = pkt.get(at..at + n)?;
        Some(b.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)))
    };
    let (mut a, mut x, mut pc, mut mem) = (0u32, 0u32, 0usize, [0u32; MEMWORDS as usize]);
    loop {
        let i = prog.get(pc)?;
        pc += 1;
        let size = |code: u16| match code & 0x18 {
            BPF_W => 4,
            BPF_H => 2,
            _ => 1,
        };
        let alu = |op: u16, a: u32, v: u32| match op {
            BPF_ADD => Some(a.wrapping_add(v)),
            BPF_MUL => Some(a.wrapping_mul(v)),
            BPF_AND => Some(a & v),
            BPF_RSH => Some(a.checked_shr(v).unwrap_or(0)),
            BPF_XOR => Some(a ^ v),
            _ => None,
        };
        match i.code {
            c if c == BPF_RET | BPF_K => return Some(i.k),
            c if c == BPF_RET | BPF_A => return Some(a),
            c if c & 0xe7 == BPF_LD | BPF_ABS => match load(i.k, size(c)) {
                Some(v) => a = v,
                None => return Some(0),
            },
            c if c & 0xe7 == BPF_LD | BPF_IND => match load(x.wrapping_add(i.k), size(c)) {
                Some(v) => a = v,
                None => return Some(0),
            },
            c if c == BPF_LDX | BPF_B | BPF_MSH => match load(i.k, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return Some(0),
            },
            c if c == BPF_LDX | BPF_W | BPF_MEM => x = *mem.get(i.k as usize)?,
            c if c == BPF_ST => *mem.get_mut(i.k as usize)? = a,
            c if c == BPF_MISC | BPF_TAX => x = a,
            c if c & 0x07 == BPF_ALU && c & BPF_X == 0 => a = alu(c & 0xf0, a, i.k)?,
            c if c & 0x07 == BPF_ALU => a = alu(c & 0xf0, a, x)?,
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
            c if c == BPF_JMP | BPF_JSET | BPF_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
            _ => return None,
        }
    }
}

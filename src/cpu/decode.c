/* x86-64 instruction decoder: prefixes, opcode maps, ModRM/SIB, immediates;
 * picks the handler so that execution never decodes again. */
#include "decode.h"
#include "ops.h"
#include "system.h"

/* ModRM presence in the 0F map, one row of 16 per string. */
static const char *const modrm_0f[16] = {
	"1111000000000101", /* 00: grp6 grp7 LAR LSL ... 0D prefetch, 0F 3DNow! */
	"1111111111111111", /* 10 */
	"1111111111111111", /* 20 */
	"0000000000000000", /* 30 */
	"1111111111111111", /* 40 CMOVcc */
	"1111111111111111", /* 50 */
	"1111111111111111", /* 60 */
	"1111111011111111", /* 70: 77 EMMS has none */
	"0000000000000000", /* 80 Jcc rel32 */
	"1111111111111111", /* 90 SETcc */
	"0001110000011111", /* A0 */
	"1111111111111111", /* B0 */
	"1111111100000000", /* C0: C8-CF BSWAP */
	"1111111111111111", /* D0 */
	"1111111111111111", /* E0 */
	"1111111111111111", /* F0 */
};

struct dstate {
	const uint8_t *p;
	size_t n, pos;
	int truncated;
	unsigned bits; /* code size: 64, 32 or 16 */
};

/* Stack operand size: 64-bit code pushes 8 bytes (2 with 66); legacy code
 * its operand size. */
static inline uint8_t stack_opsz(const struct dstate *d, const struct insn *i)
{
	if (d->bits != 64)
		return i->opsz;
	return i->opsz == 2 ? 2 : 8;
}

static inline uint8_t next8(struct dstate *d)
{
	if (d->pos >= d->n) {
		d->truncated = 1;
		return 0;
	}
	return d->p[d->pos++];
}

static uint64_t read_imm(struct dstate *d, unsigned size, int sign)
{
	uint64_t v = 0;
	for (unsigned k = 0; k < size; k++)
		v |= (uint64_t)next8(d) << (8 * k);
	if (sign && size < 8)
		v = (uint64_t)sext(v, size);
	return v;
}

static void parse_modrm(struct dstate *d, struct insn *i)
{
	uint8_t m = next8(d);
	unsigned mod = m >> 6, rm = m & 7;
	i->modrm = m;
	i->reg = ((m >> 3) & 7) | ((i->rex & 4) ? 8 : 0);
	if (mod == 3) {
		i->mod3 = 1;
		i->rm = rm | ((i->rex & 1) ? 8 : 0);
		return;
	}
	if (i->adsz == 2) {
		/* 16-bit addressing: BX+SI BX+DI BP+SI BP+DI SI DI BP BX */
		static const uint8_t b16[8] = {R_RBX, R_RBX, R_RBP, R_RBP, R_RSI, R_RDI, R_RBP, R_RBX};
		static const uint8_t x16[8] = {R_RSI, R_RDI, R_RSI, R_RDI, NOREG, NOREG, NOREG, NOREG};
		i->base = b16[rm];
		i->index = x16[rm];
		if (mod == 0 && rm == 6) {
			i->base = NOREG;
			i->disp = (int32_t)read_imm(d, 2, 0);
		} else if (mod == 1) {
			i->disp = (int32_t)read_imm(d, 1, 1);
		} else if (mod == 2) {
			i->disp = (int32_t)read_imm(d, 2, 0);
		}
		return;
	}
	if (rm == 4) {
		uint8_t sib = next8(d);
		unsigned idx = ((sib >> 3) & 7) | ((i->rex & 2) ? 8 : 0);
		unsigned base = sib & 7;
		i->scale = sib >> 6;
		i->index = idx == 4 ? NOREG : (uint8_t)idx;
		if (base == 5 && mod == 0) {
			i->base = NOREG;
			i->disp = (int32_t)read_imm(d, 4, 1);
		} else {
			i->base = (uint8_t)(base | ((i->rex & 1) ? 8 : 0));
		}
	} else if (rm == 5 && mod == 0) {
		/* 64-bit code: RIP-relative; legacy code: an absolute disp32 */
		i->base = d->bits == 64 ? RIPREL : NOREG;
		i->disp = (int32_t)read_imm(d, 4, 1);
	} else {
		i->base = (uint8_t)(rm | ((i->rex & 1) ? 8 : 0));
	}
	if (mod == 1)
		i->disp = (int32_t)read_imm(d, 1, 1);
	else if (mod == 2)
		i->disp = (int32_t)read_imm(d, 4, 1);
}

/* Byte registers 4-7 without REX are AH CH DH BH (stored as 16-19). */
static void byte_regs(struct insn *i, int reg_is_byte, int rm_is_byte)
{
	if (i->rex)
		return;
	if (reg_is_byte && i->reg >= 4 && i->reg < 8)
		i->reg += 12;
	if (rm_is_byte && i->mod3 && i->rm >= 4 && i->rm < 8)
		i->rm += 12;
}

/* Immediate of size "z": 2 for 16-bit operands, else 4 (sign-extended). */
static unsigned imm_z(const struct insn *i)
{
	return i->opsz == 2 ? 2 : 4;
}

static int lockable(const struct insn *i)
{
	if (i->mod3)
		return 0;
	if (i->map == MAP_1B) {
		uint8_t o = i->op;
		if (o < 0x40 && (o & 7) < 2 && (o & 0x38) != 0x38)
			return 1; /* ALU Eb/Ev, Gb/Gv except CMP */
		if (o >= 0x80 && o <= 0x83)
			return ((i->modrm >> 3) & 7) != 7;
		if (o == 0x86 || o == 0x87)
			return 1;
		if (o == 0xf6 || o == 0xf7)
			return ((i->modrm >> 3) & 7) == 2 || ((i->modrm >> 3) & 7) == 3;
		if (o == 0xfe || o == 0xff)
			return ((i->modrm >> 3) & 7) < 2;
		return 0;
	}
	if (i->map == MAP_0F) {
		uint8_t o = i->op;
		if (o == 0xab || o == 0xb3 || o == 0xbb || o == 0xb0 || o == 0xb1 || o == 0xc0 || o == 0xc1)
			return 1;
		if (o == 0xba)
			return ((i->modrm >> 3) & 7) >= 5;
		if (o == 0xc7)
			return ((i->modrm >> 3) & 7) == 1;
	}
	return 0;
}

static void set_alu(struct insn *i, unsigned op)
{
	i->aux = (uint8_t)op;
	i->fn = alu_rm_r[op];
	if (i->mod3 && !i->lock && (i->opsz == 8 || i->opsz == 4)) {
		static const insn_fn rr64[8] = {op_alu_rr64_add, op_alu_rr64_or,  NULL,		  NULL, op_alu_rr64_and,
						op_alu_rr64_sub, op_alu_rr64_xor, op_alu_rr64_cmp};
		static const insn_fn rr32[8] = {op_alu_rr32_add, op_alu_rr32_or,  NULL,		  NULL, op_alu_rr32_and,
						op_alu_rr32_sub, op_alu_rr32_xor, op_alu_rr32_cmp};
		insn_fn f = i->opsz == 8 ? rr64[op] : rr32[op];
		if (f)
			i->fn = f;
	}
}

/* One-byte opcode map. Returns 0 if invalid. */
static int decode_1b(struct dstate *d, struct insn *i, unsigned *flags)
{
	uint8_t o = i->op;
	unsigned grp;

	if (o < 0x40 && (o & 7) < 6) {
		unsigned op = o >> 3, form = o & 7;
		if (!(form & 1))
			i->opsz = 1;
		if (form < 4) {
			parse_modrm(d, i);
			byte_regs(i, i->opsz == 1, i->opsz == 1);
			if (form < 2) {
				set_alu(i, op);
			} else if (i->mod3 && (i->opsz == 8 || i->opsz == 4) && op != 2 && op != 3) {
				/* Gv op= Ev with a register source: swap to the rm-destination fast form */
				uint8_t t = i->reg;
				i->reg = i->rm;
				i->rm = t;
				set_alu(i, op);
			} else {
				i->aux = (uint8_t)op;
				i->fn = alu_r_rm[op];
			}
		} else {
			/* AL/rAX, imm */
			i->mod3 = 1;
			i->rm = R_RAX;
			i->imm = read_imm(d, i->opsz == 1 ? 1 : imm_z(i), 1);
			i->aux = (uint8_t)op;
			i->fn = alu_rm_imm[op];
		}
		return 1;
	}
	if (o >= 0x40 && o <= 0x4f) { /* legacy modes only: INC/DEC r */
		i->mod3 = 1;
		i->rm = o & 7;
		i->fn = o < 0x48 ? op_inc : op_dec;
		return 1;
	}
	if (o == 0xea && d->bits != 64) { /* JMP ptr16:16/32 */
		i->imm = read_imm(d, i->opsz == 2 ? 2 : 4, 0);
		i->aux = 0;
		i->disp = (int32_t)read_imm(d, 2, 0); /* the selector */
		i->fn = op_sys_ljmp;
		*flags |= DEC_BRANCH;
		return 1;
	}
	if (o >= 0x50 && o <= 0x5f) {
		i->reg = (o & 7) | ((i->rex & 1) ? 8 : 0);
		i->opsz = stack_opsz(d, i);
		i->fn = o < 0x58 ? op_push_r : op_pop_r;
		return 1;
	}
	if (o >= 0x70 && o <= 0x7f) {
		i->imm = read_imm(d, 1, 1);
		i->aux = o & 15;
		i->fn = op_jcc;
		*flags |= DEC_BRANCH;
		return 1;
	}
	if (o >= 0x91 && o <= 0x97) {
		i->reg = (o & 7) | ((i->rex & 1) ? 8 : 0);
		i->fn = op_xchg_ax;
		return 1;
	}
	if (o >= 0xb0 && o <= 0xbf) {
		i->reg = (o & 7) | ((i->rex & 1) ? 8 : 0);
		if (o < 0xb8) {
			i->opsz = 1;
			byte_regs(i, 1, 0);
			i->imm = read_imm(d, 1, 0);
		} else {
			i->imm = read_imm(d, i->opsz, 0);
		}
		i->fn = op_mov_r_imm;
		return 1;
	}
	if (o >= 0xd8 && o <= 0xdf) {
		parse_modrm(d, i);
		if (x87_decode(i) < 0)
			i->fn = op_ud;
		return 1;
	}

	switch (o) {
	case 0x63: /* MOVSXD Gv, Ed */
		parse_modrm(d, i);
		i->fn = op_movsxd;
		return 1;
	case 0x68:
		i->opsz = stack_opsz(d, i);
		i->imm = read_imm(d, i->opsz == 2 ? 2 : 4, 1);
		i->fn = op_push_imm;
		return 1;
	case 0x6a:
		i->opsz = stack_opsz(d, i);
		i->imm = read_imm(d, 1, 1);
		i->fn = op_push_imm;
		return 1;
	case 0x69:
	case 0x6b:
		parse_modrm(d, i);
		i->imm = read_imm(d, o == 0x6b ? 1 : imm_z(i), 1);
		i->fn = op_imul_r_rm_imm;
		return 1;
	case 0x6c:
	case 0x6d: /* INS */
		i->fn = op_sys_ins;
		*flags |= DEC_EXACT;
		return 1;
	case 0x6e:
	case 0x6f: /* OUTS */
		i->fn = op_sys_outs;
		*flags |= DEC_EXACT;
		return 1;
	case 0xe4:
	case 0xe5:
	case 0xe6:
	case 0xe7:
		i->imm = read_imm(d, 1, 0);
		i->imm8 = (uint8_t)i->imm;
		i->fn = o < 0xe6 ? op_sys_in : op_sys_out;
		*flags |= DEC_EXACT;
		return 1;
	case 0xec:
	case 0xed:
		i->fn = op_sys_in;
		*flags |= DEC_EXACT;
		return 1;
	case 0xee:
	case 0xef:
		i->fn = op_sys_out;
		*flags |= DEC_EXACT;
		return 1;
	case 0xfa: i->fn = op_sys_cli; return 1;
	case 0xfb:
		i->fn = op_sys_sti;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xf4:
		i->fn = op_sys_hlt;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x80:
	case 0x81:
	case 0x83:
		if (o == 0x80)
			i->opsz = 1;
		parse_modrm(d, i);
		byte_regs(i, 0, i->opsz == 1);
		i->imm = read_imm(d, o == 0x81 ? imm_z(i) : 1, 1);
		grp = (i->modrm >> 3) & 7;
		i->aux = (uint8_t)grp;
		i->fn = alu_rm_imm[grp];
		return 1;
	case 0x84:
	case 0x85:
	case 0x86:
	case 0x87:
	case 0x88:
	case 0x89:
	case 0x8a:
	case 0x8b:
		if (!(o & 1))
			i->opsz = 1;
		parse_modrm(d, i);
		byte_regs(i, i->opsz == 1, i->opsz == 1);
		switch (o) {
		case 0x84:
		case 0x85: i->fn = op_test_rm_r; break;
		case 0x86:
		case 0x87: i->fn = op_xchg_rm_r; break;
		case 0x88:
		case 0x89:
			i->fn = op_mov_rm_r;
			if (i->mod3 && i->opsz == 8)
				i->fn = op_mov_rr64;
			else if (i->mod3 && i->opsz == 4)
				i->fn = op_mov_rr32;
			else if (!i->mod3 && i->opsz == 8)
				i->fn = op_mov_m64_r;
			break;
		default:
			i->fn = op_mov_r_rm;
			if (i->mod3 && (i->opsz == 8 || i->opsz == 4)) {
				uint8_t t = i->reg;
				i->reg = i->rm;
				i->rm = t;
				i->fn = i->opsz == 8 ? op_mov_rr64 : op_mov_rr32;
			} else if (!i->mod3 && i->opsz == 8) {
				i->fn = op_mov_r_m64;
			}
		}
		return 1;
	case 0x8c: /* MOV Ev, Sreg */
		parse_modrm(d, i);
		i->aux = (i->modrm >> 3) & 7;
		if (i->aux > 5)
			return 0;
		i->fn = op_mov_r_sreg;
		return 1;
	case 0x8d:
		parse_modrm(d, i);
		if (i->mod3)
			return 0;
		i->fn = op_lea;
		return 1;
	case 0x8e:
		parse_modrm(d, i);
		i->aux = (i->modrm >> 3) & 7;
		if (i->aux > 5 || i->aux == SEG_CS)
			return 0;
		i->fn = op_mov_sreg_r;
		return 1;
	case 0x8f:
		parse_modrm(d, i);
		if ((i->modrm >> 3) & 7)
			return 0;
		i->opsz = stack_opsz(d, i);
		i->fn = op_pop_rm;
		return 1;
	case 0x90:
		if (i->rex & 1) {
			i->reg = 8;
			i->fn = op_xchg_ax;
		} else {
			i->fn = op_nop; /* NOP, and F3 90 PAUSE */
		}
		return 1;
	case 0x98: i->fn = op_cbw; return 1;
	case 0x99: i->fn = op_cwd; return 1;
	case 0x9b:
		if (x87_decode(i) < 0)
			i->fn = op_nop;
		return 1;
	case 0x9c:
		i->opsz = stack_opsz(d, i);
		i->fn = op_pushf;
		return 1;
	case 0x9d:
		i->opsz = stack_opsz(d, i);
		i->fn = op_popf;
		*flags |= DEC_BRANCH; /* may set TF or change AC */
		return 1;
	case 0x9e: i->fn = op_sahf; return 1;
	case 0x9f: i->fn = op_lahf; return 1;
	case 0xa0:
	case 0xa1:
	case 0xa2:
	case 0xa3:
		if (!(o & 1))
			i->opsz = 1;
		i->imm = read_imm(d, i->adsz, 0);
		i->fn = o < 0xa2 ? op_mov_a_moffs : op_mov_moffs_a;
		return 1;
	case 0xa4:
	case 0xa5:
	case 0xa6:
	case 0xa7:
	case 0xaa:
	case 0xab:
	case 0xac:
	case 0xad:
	case 0xae:
	case 0xaf:
		if (!(o & 1))
			i->opsz = 1;
		switch (o & ~1) {
		case 0xa4: i->fn = op_movs; break;
		case 0xa6: i->fn = op_cmps; break;
		case 0xaa: i->fn = op_stos; break;
		case 0xac: i->fn = op_lods; break;
		default: i->fn = op_scas; break;
		}
		return 1;
	case 0xa8:
	case 0xa9:
		if (o == 0xa8)
			i->opsz = 1;
		i->mod3 = 1;
		i->rm = R_RAX;
		i->imm = read_imm(d, i->opsz == 1 ? 1 : imm_z(i), 1);
		i->fn = op_test_rm_imm;
		return 1;
	case 0xc0:
	case 0xc1:
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		if (!(o & 1))
			i->opsz = 1;
		parse_modrm(d, i);
		byte_regs(i, 0, i->opsz == 1);
		i->aux = (i->modrm >> 3) & 7;
		if (o <= 0xc1) {
			i->imm = read_imm(d, 1, 0);
			i->imm8 = (uint8_t)i->imm;
			i->fn = op_shift_imm;
		} else if (o <= 0xd1) {
			i->imm = 1;
			i->imm8 = 1;
			i->fn = op_shift_imm;
		} else {
			i->fn = op_shift_cl;
		}
		return 1;
	case 0xc2:
		i->imm = read_imm(d, 2, 0);
		i->fn = op_ret_imm;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xc3:
		i->fn = op_ret;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xc6:
	case 0xc7:
		if (o == 0xc6)
			i->opsz = 1;
		parse_modrm(d, i);
		if ((i->modrm >> 3) & 7)
			return 0; /* XABORT/XBEGIN: no RTM */
		byte_regs(i, 0, i->opsz == 1);
		i->imm = read_imm(d, i->opsz == 1 ? 1 : imm_z(i), 1);
		i->fn = op_mov_rm_imm;
		return 1;
	case 0xc8:
		i->imm = read_imm(d, 2, 0);
		i->imm |= read_imm(d, 1, 0) << 16;
		i->opsz = stack_opsz(d, i);
		i->fn = op_enter;
		return 1;
	case 0xc9:
		i->opsz = stack_opsz(d, i);
		i->fn = op_leave;
		return 1;
	case 0xca:
		i->imm = read_imm(d, 2, 0);
		i->fn = op_sys_retf;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xcb:
		i->fn = op_sys_retf;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xcf: /* IRET */
		i->opsz = (i->rex & 8) ? 8 : i->opsz;
		i->fn = op_sys_iret;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xcc:
		i->fn = op_int3;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xcd:
		i->imm = read_imm(d, 1, 0);
		i->imm8 = (uint8_t)i->imm;
		i->fn = op_int;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xf1: /* INT1 */
		i->fn = op_priv;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xd7: i->fn = op_xlat; return 1;
	case 0xe0:
	case 0xe1:
	case 0xe2:
		i->imm = read_imm(d, 1, 1);
		i->aux = o & 3;
		i->fn = op_loop;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xe3:
		i->imm = read_imm(d, 1, 1);
		i->fn = op_jrcxz;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xe8:
	case 0xe9:
	case 0xeb:
		i->imm = read_imm(d, o == 0xeb ? 1 : d->bits != 64 && i->opsz == 2 ? 2 : 4, 1);
		i->fn = o == 0xe8 ? op_call_rel : op_jmp_rel;
		*flags |= DEC_BRANCH;
		return 1;
	case 0xf5: i->fn = op_cmc; return 1;
	case 0xf8: i->fn = op_clc; return 1;
	case 0xf9: i->fn = op_stc; return 1;
	case 0xfc: i->fn = op_cld; return 1;
	case 0xfd: i->fn = op_std; return 1;
	case 0xf6:
	case 0xf7:
		if (o == 0xf6)
			i->opsz = 1;
		parse_modrm(d, i);
		byte_regs(i, 0, i->opsz == 1);
		grp = (i->modrm >> 3) & 7;
		switch (grp) {
		case 0:
		case 1:
			i->imm = read_imm(d, i->opsz == 1 ? 1 : imm_z(i), 1);
			i->fn = op_test_rm_imm;
			break;
		case 2: i->fn = op_not; break;
		case 3: i->fn = op_neg; break;
		case 4: i->fn = op_mul; break;
		case 5: i->fn = op_imul1; break;
		case 6: i->fn = op_div; break;
		default: i->fn = op_idiv; break;
		}
		return 1;
	case 0xfe:
		i->opsz = 1;
		parse_modrm(d, i);
		byte_regs(i, 0, 1);
		grp = (i->modrm >> 3) & 7;
		if (grp > 1)
			return 0;
		i->fn = grp ? op_dec : op_inc;
		return 1;
	case 0xff:
		parse_modrm(d, i);
		grp = (i->modrm >> 3) & 7;
		switch (grp) {
		case 0: i->fn = op_inc; return 1;
		case 1: i->fn = op_dec; return 1;
		case 2:
			i->opsz = d->bits == 64 ? 8 : i->opsz;
			i->fn = op_call_rm;
			*flags |= DEC_BRANCH;
			return 1;
		case 4:
			i->opsz = d->bits == 64 ? 8 : i->opsz;
			i->fn = op_jmp_rm;
			*flags |= DEC_BRANCH;
			return 1;
		case 6:
			i->opsz = stack_opsz(d, i);
			i->fn = op_push_rm;
			return 1;
		case 3: /* far CALL through memory */
			if (i->mod3)
				return 0;
			i->fn = op_priv;
			*flags |= DEC_BRANCH;
			return 1;
		case 5: /* far JMP through memory: m16:16/32/64 */
			if (i->mod3)
				return 0;
			i->fn = op_sys_ljmp_m;
			*flags |= DEC_BRANCH;
			return 1;
		default: return 0;
		}
	}
	return 0;
}

static int is_sse_0f(uint8_t o)
{
	return (o >= 0x10 && o <= 0x17) || (o >= 0x28 && o <= 0x2f) || (o >= 0x50 && o <= 0x7f) || o == 0xc2 ||
	       (o >= 0xc4 && o <= 0xc6) || o >= 0xd0;
}

static int decode_0f(struct dstate *d, struct insn *i, unsigned *flags)
{
	uint8_t o = i->op;
	unsigned grp;

	if (o >= 0x20 && o <= 0x23) {
		/* MOV to/from CR/DR: mod is ignored, operands are registers */
		uint8_t m = next8(d);
		i->modrm = m;
		i->mod3 = 1;
		i->reg = ((m >> 3) & 7) | ((i->rex & 4) ? 8 : 0);
		i->rm = (m & 7) | ((i->rex & 1) ? 8 : 0);
	} else if (modrm_0f[o >> 4][o & 15] == '1') {
		parse_modrm(d, i);
	}
	if ((o >= 0x70 && o <= 0x73) || o == 0xc2 || (o >= 0xc4 && o <= 0xc6) || o == 0xa4 || o == 0xac || o == 0xba) {
		i->imm = read_imm(d, 1, 0);
		i->imm8 = (uint8_t)i->imm;
	}
	if (is_sse_0f(o))
		return sse_decode(i) < 0 ? 0 : 1;
	if (o >= 0x40 && o <= 0x4f) {
		i->aux = o & 15;
		i->fn = op_cmov;
		return 1;
	}
	if (o >= 0x80 && o <= 0x8f) {
		i->imm = read_imm(d, d->bits != 64 && i->opsz == 2 ? 2 : 4, 1);
		i->aux = o & 15;
		i->fn = op_jcc;
		*flags |= DEC_BRANCH;
		return 1;
	}
	if (o >= 0x90 && o <= 0x9f) {
		i->opsz = 1;
		byte_regs(i, 0, 1);
		i->aux = o & 15;
		i->fn = op_setcc;
		return 1;
	}
	if (o >= 0xc8) { /* BSWAP */
		i->reg = (o & 7) | ((i->rex & 1) ? 8 : 0);
		i->fn = op_bswap;
		return 1;
	}
	if (o >= 0x18 && o <= 0x1f) { /* prefetch hints, multi-byte NOP, ENDBR */
		i->fn = op_nop;
		return 1;
	}
	switch (o) {
	case 0x00: i->fn = op_sys_grp6; return 1;
	case 0x01:
		if (i->mod3) {
			switch (i->modrm) {
			case 0xd0: /* XGETBV: no XSAVE advertised */
			case 0xd5:
			case 0xd6: /* XEND XTEST */
			case 0xee:
			case 0xef: /* RDPKRU WRPKRU */
			case 0xf9: /* RDTSCP: not advertised */
			case 0xc8:
			case 0xc9:
			case 0xca:
			case 0xcb: /* MONITOR MWAIT CLAC STAC */ return 0;
			}
			i->fn = op_sys_grp7_reg;
		} else {
			i->fn = op_sys_grp7;
		}
		*flags |= DEC_BRANCH;
		return 1;
	case 0x06: i->fn = op_sys_clts; return 1;
	case 0x07:
		i->fn = op_sys_sysret;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x08:
	case 0x09: i->fn = op_sys_wbinvd; return 1;
	case 0x20:
	case 0x22:
		i->fn = op_sys_mov_cr;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x21:
	case 0x23: i->fn = op_sys_mov_dr; return 1;
	case 0x30:
		i->fn = op_sys_wrmsr;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x32: i->fn = op_sys_rdmsr; return 1;
	case 0x33: /* RDPMC: #GP at CPL 3 without CR4.PCE */
		i->fn = op_priv;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x34:
	case 0x35: /* SYSENTER SYSEXIT: #UD in long mode (AMD APM vol. 3) */ return 0;
	case 0x05:
		i->fn = op_syscall;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x0b:
		i->fn = op_ud2;
		*flags |= DEC_BRANCH;
		return 1;
	case 0x0d: i->fn = op_nop; return 1;
	case 0x31:
		i->fn = op_rdtsc;
		*flags |= DEC_EXACT;
		return 1;
	case 0xa2: i->fn = op_cpuid; return 1;
	case 0xa0:
	case 0xa8:
		i->opsz = stack_opsz(d, i);
		i->aux = o == 0xa0 ? SEG_FS : SEG_GS;
		i->fn = op_push_sreg;
		return 1;
	case 0xa1:
	case 0xa9:
		i->opsz = stack_opsz(d, i);
		i->aux = o == 0xa1 ? SEG_FS : SEG_GS;
		i->fn = op_pop_sreg;
		return 1;
	case 0xa3:
	case 0xab:
	case 0xb3:
	case 0xbb:
		i->aux = o == 0xa3 ? 0 : o == 0xab ? 1 : o == 0xb3 ? 2 : 3;
		i->fn = op_bt_r;
		return 1;
	case 0xba:
		grp = (i->modrm >> 3) & 7;
		if (grp < 4)
			return 0;
		i->aux = (uint8_t)(grp - 4);
		i->fn = op_bt_imm;
		return 1;
	case 0xa4: i->fn = op_shld_imm; return 1;
	case 0xa5: i->fn = op_shld_cl; return 1;
	case 0xac: i->fn = op_shrd_imm; return 1;
	case 0xad: i->fn = op_shrd_cl; return 1;
	case 0xaf: i->fn = op_imul_r_rm; return 1;
	case 0xae:
		grp = (i->modrm >> 3) & 7;
		if (i->mod3) {
			if (i->pfx == PFX_NONE && grp >= 5) {
				i->fn = op_fence;
				return 1;
			}
			return 0; /* RDFSBASE & co.: FSGSBASE not advertised */
		}
		if (grp <= 1)
			return x87_decode(i) < 0 ? 0 : 1;
		if (grp <= 3)
			return sse_decode(i) < 0 ? 0 : 1;
		if (grp == 7 && (i->pfx == PFX_NONE || i->pfx == PFX_66)) {
			i->fn = op_clflush;
			return 1;
		}
		return 0; /* XSAVE family: not advertised */
	case 0xb0:
	case 0xb1:
		if (o == 0xb0)
			i->opsz = 1;
		byte_regs(i, i->opsz == 1, i->opsz == 1);
		i->fn = op_cmpxchg;
		return 1;
	case 0xc0:
	case 0xc1:
		if (o == 0xc0)
			i->opsz = 1;
		byte_regs(i, i->opsz == 1, i->opsz == 1);
		i->fn = op_xadd;
		return 1;
	case 0xb6:
	case 0xb7:
	case 0xbe:
	case 0xbf:
		i->aux = (o & 1) ? 2 : 1;
		byte_regs(i, 0, i->aux == 1);
		i->fn = (o & 8) ? op_movsx : op_movzx;
		return 1;
	case 0xb8:
		if (i->pfx != PFX_F3 && !(i->rep == REP_Z))
			return 0;
		i->fn = op_popcnt;
		return 1;
	case 0xbc: i->fn = op_bsf; return 1; /* F3: TZCNT not advertised, runs as BSF */
	case 0xbd: i->fn = op_bsr; return 1;
	case 0xc3:
		if (i->mod3)
			return 0;
		i->fn = op_mov_rm_r; /* MOVNTI */
		return 1;
	case 0xc7:
		grp = (i->modrm >> 3) & 7;
		if (grp == 1 && !i->mod3) {
			i->opsz = (i->rex & 8) ? 8 : 4;
			i->fn = op_cmpxchg8b16b;
			return 1;
		}
		/* RDRAND (/6) and RDSEED (/7) take a register; F3 /7 is RDPID,
		 * which is not offered, so an F2/F3 prefix is #UD */
		if ((grp == 6 || grp == 7) && i->mod3 && i->rep == REP_NONE) {
			i->fn = op_rdrand;
			*flags |= DEC_EXACT;
			return 1;
		}
		return 0;
	case 0xb9:
	case 0xff: /* UD1, UD0 */
		i->fn = op_ud2;
		*flags |= DEC_BRANCH;
		return 1;
	}
	return 0;
}

/* Legacy (16/32-bit) code: stack operations through SS with the stack's
 * own address size, and default segments for memory operands. */
static void decode_legacy_fixup(struct insn *i)
{
	static const struct {
		insn_fn from, to;
	} map[] = {
		{op_push_r, op_lpush_r},   {op_pop_r, op_lpop_r},	{op_push_imm, op_lpush_imm},
		{op_push_rm, op_lpush_rm}, {op_pop_rm, op_lpop_rm},	{op_pushf, op_lpushf},
		{op_popf, op_lpopf},	   {op_call_rel, op_lcall_rel}, {op_call_rm, op_lcall_rm},
		{op_ret, op_lret},	   {op_ret_imm, op_lret},	{op_jmp_rm, op_ljmp_rm},
		{op_enter, op_ud},	   {op_leave, op_lleave},
	};
	for (unsigned k = 0; k < sizeof(map) / sizeof(map[0]); k++)
		if (i->fn == map[k].from) {
			i->fn = map[k].to;
			break;
		}
	if (!i->mod3 && i->seg == SEG_NONE && (i->base != NOREG || i->index != NOREG || i->disp || i->modrm))
		i->seg = (i->base == R_RSP || i->base == R_RBP) ? SEG_SS : SEG_DS;
	if (i->seg == SEG_NONE && (i->fn == op_mov_a_moffs || i->fn == op_mov_moffs_a || i->fn == op_xlat))
		i->seg = SEG_DS;
}

/* Ran out of bytes: past 15 the instruction is too long, which is #GP(0)
 * (SDM vol. 2 §2.3.11); otherwise the rest is on a page not fetched. */
static int too_long(struct insn *i, size_t n)
{
	if (n < 15)
		return -1;
	memset(i, 0, sizeof(*i));
	i->fn = op_priv;
	i->len = 15;
	return 0;
}

int decode_insn_mode(const uint8_t *p, size_t n, struct insn *i, unsigned *flags, unsigned bits)
{
	struct dstate d = {.p = p, .n = n > 15 ? 15 : n, .bits = bits};
	int has66 = 0, has67 = 0;
	uint8_t lastrep = 0;

	memset(i, 0, sizeof(*i));
	i->seg = SEG_NONE;
	i->base = NOREG;
	i->index = NOREG;
	*flags = 0;

	for (;;) {
		uint8_t b = next8(&d);
		if (d.truncated)
			return too_long(i, n);
		switch (b) {
		case 0x66:
			has66 = 1;
			i->rex = 0;
			continue;
		case 0x67:
			has67 = 1;
			i->rex = 0;
			continue;
		case 0xf2:
		case 0xf3:
			lastrep = b;
			i->rex = 0;
			continue;
		case 0xf0:
			i->lock = 1;
			i->rex = 0;
			continue;
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
			/* ignored in 64-bit mode; real overrides in legacy modes */
			if (bits != 64)
				i->seg = b == 0x26 ? SEG_ES : b == 0x2e ? SEG_CS : b == 0x36 ? SEG_SS : SEG_DS;
			i->rex = 0;
			continue;
		case 0x64:
			i->seg = SEG_FS;
			i->rex = 0;
			continue;
		case 0x65:
			i->seg = SEG_GS;
			i->rex = 0;
			continue;
		}
		if ((b & 0xf0) == 0x40 && bits == 64) {
			i->rex = b;
			continue;
		}
		i->op = b;
		break;
	}
	if (bits == 64) {
		i->opsz = (i->rex & 8) ? 8 : has66 ? 2 : 4;
		i->adsz = has67 ? 4 : 8;
	} else {
		unsigned def = bits == 32 ? 4 : 2;
		i->opsz = (uint8_t)(has66 ? 6 - def : def);
		i->adsz = (uint8_t)(has67 ? 6 - def : def);
	}
	i->rep = lastrep == 0xf3 ? REP_Z : lastrep == 0xf2 ? REP_NZ : REP_NONE;
	i->pfx = lastrep == 0xf3 ? PFX_F3 : lastrep == 0xf2 ? PFX_F2 : has66 ? PFX_66 : PFX_NONE;

	int ok;
	if (i->op == 0x0f) {
		uint8_t b = next8(&d);
		if (b == 0x38 || b == 0x3a) {
			i->map = b == 0x38 ? MAP_0F38 : MAP_0F3A;
			i->op = next8(&d);
			parse_modrm(&d, i);
			if (i->map == MAP_0F3A) {
				i->imm = read_imm(&d, 1, 0);
				i->imm8 = (uint8_t)i->imm;
			}
			ok = d.truncated ? 1 : sse_decode(i) >= 0;
		} else {
			i->map = MAP_0F;
			i->op = b;
			ok = decode_0f(&d, i, flags);
		}
	} else if (i->op == 0xc4 || i->op == 0xc5 || i->op == 0x62) {
		ok = 0; /* VEX/EVEX: no AVX (LES/LDS/BOUND in legacy code: not supported) */
	} else if (bits != 64 && (i->op == 0x63 || i->op == 0x9a || i->op == 0x60 || i->op == 0x61)) {
		ok = 0; /* legacy-only ARPL, CALL far, PUSHA/POPA: not supported */
	} else if (bits != 64 && ((i->op >= 0x40 && i->op <= 0x4f) || i->op == 0xea)) {
		ok = decode_1b(&d, i, flags);
	} else if ((i->op >= 0x06 && i->op <= 0x07) || i->op == 0x0e || i->op == 0x16 || i->op == 0x17 ||
		   i->op == 0x1e || i->op == 0x1f || i->op == 0x27 || i->op == 0x2f || i->op == 0x37 || i->op == 0x3f ||
		   (i->op >= 0x60 && i->op <= 0x62) || i->op == 0x82 || i->op == 0x9a || i->op == 0xce ||
		   (i->op >= 0xd4 && i->op <= 0xd6) || i->op == 0xea) {
		ok = 0; /* invalid in 64-bit mode */
	} else {
		ok = decode_1b(&d, i, flags);
	}
	if (d.truncated)
		return too_long(i, n);
	if (!ok || (i->lock && !lockable(i))) {
		i->fn = op_ud;
		i->len = (uint8_t)d.pos;
		*flags |= DEC_BRANCH;
		return 0;
	}
	i->len = (uint8_t)d.pos;
	if (bits != 64)
		decode_legacy_fixup(i);
	return (int)d.pos;
}

int decode_insn(const uint8_t *p, size_t n, struct insn *i, unsigned *flags)
{
	return decode_insn_mode(p, n, i, flags, 64);
}

int cpu_insn_length(const uint8_t *code, size_t n)
{
	struct insn i;
	unsigned flags;
	int len = decode_insn(code, n, &i, &flags);
	return len;
}

static int fn_in(insn_fn f, const insn_fn *tab, unsigned n)
{
	for (unsigned k = 0; k < n; k++)
		if (tab[k] == f)
			return 1;
	return 0;
}

void decode_flag_use(const struct insn *i, unsigned *rd, unsigned *wr)
{
	static const insn_fn rr[] = {op_alu_rr64_add, op_alu_rr64_sub, op_alu_rr64_xor, op_alu_rr64_and,
				     op_alu_rr64_or,  op_alu_rr64_cmp, op_alu_rr32_add, op_alu_rr32_sub,
				     op_alu_rr32_xor, op_alu_rr32_and, op_alu_rr32_or,	op_alu_rr32_cmp};
	static const insn_fn none[] = {op_mov_rm_r, op_mov_r_rm,  op_mov_rm_imm, op_mov_r_imm,	 op_mov_rr64,
				       op_mov_rr32, op_mov_r_m64, op_mov_m64_r,	 op_mov_a_moffs, op_mov_moffs_a,
				       op_movzx,    op_movsx,	  op_movsxd,	 op_lea,	 op_xchg_rm_r,
				       op_xchg_ax,  op_bswap,	  op_cbw,	 op_cwd,	 op_not,
				       op_push_r,   op_pop_r,	  op_push_imm,	 op_push_rm,	 op_pop_rm,
				       op_nop,	    op_leave,	  op_call_rel,	 op_jmp_rel};
	insn_fn f = i->fn;
	*rd = FL_ARITH;
	*wr = 0;
	if (fn_in(f, alu_rm_r, 8) || fn_in(f, alu_r_rm, 8) || fn_in(f, alu_rm_imm, 8) || fn_in(f, rr, 12)) {
		*rd = (i->aux == 2 || i->aux == 3) ? FL_CF : 0; /* ADC SBB */
		*wr = FL_ARITH;
	} else if (f == op_test_rm_r || f == op_test_rm_imm || f == op_neg || f == op_popcnt || f == op_rdrand) {
		*rd = 0;
		*wr = FL_ARITH;
	} else if (f == op_inc || f == op_dec) {
		*rd = 0;
		*wr = FL_ARITH & ~FL_CF;
	} else if (f == op_shift_imm) {
		unsigned cnt = i->imm8 & (i->opsz == 8 ? 63 : 31);
		*rd = (i->aux == 2 || i->aux == 3) ? FL_CF : 0;
		*wr = !cnt ? 0 : i->aux < 4 ? FL_CF | FL_OF : FL_ARITH;
	} else if (f == op_shift_cl) {
		*rd = (i->aux == 2 || i->aux == 3) ? FL_CF : 0; /* count 0 passes flags through */
	} else if (f == op_mul || f == op_imul1 || f == op_imul_r_rm || f == op_imul_r_rm_imm) {
		*rd = 0;
		*wr = FL_CF | FL_OF;
	} else if (fn_in(f, none, sizeof(none) / sizeof(none[0]))) {
		*rd = 0;
	}
}

void decode_flags_dead(struct insn *i)
{
	i->noflags = 1;
	if (i->fn == op_shift_imm && i->mod3 && (i->opsz == 4 || i->opsz == 8) && i->aux != 2 && i->aux != 3 &&
	    (i->imm8 & (i->opsz * 8 - 1))) {
		static const insn_fn nf32[8] = {op_rol_r32_nf, op_ror_r32_nf, NULL,	     NULL,
						op_shl_r32_nf, op_shr_r32_nf, op_shl_r32_nf, op_sar_r32_nf};
		static const insn_fn nf64[8] = {op_rol_r64_nf, op_ror_r64_nf, NULL,	     NULL,
						op_shl_r64_nf, op_shr_r64_nf, op_shl_r64_nf, op_sar_r64_nf};
		i->fn = i->opsz == 4 ? nf32[i->aux] : nf64[i->aux];
	}
}

int decode_uses_stack(const struct insn *i)
{
	static const insn_fn stack_ops[] = {op_push_r,	op_pop_r, op_push_imm, op_push_rm,   op_pop_rm,
					    op_pushf,	op_popf,  op_enter,    op_leave,     op_call_rel,
					    op_call_rm, op_ret,	  op_ret_imm,  op_push_sreg, op_pop_sreg};
	return fn_in(i->fn, stack_ops, sizeof(stack_ops) / sizeof(stack_ops[0]));
}

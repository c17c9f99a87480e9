/* The virtio PCI transport (virtio 1.2 §4.1), modern devices only: the
 * common configuration, notify, ISR and device configuration structures in
 * one 64-bit BAR, the MSI-X table in another, INTx when MSI-X is off. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "state/stream.h"
#include "virtio/virtio.h"

/* Capability types (§4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* Common configuration registers (§4.1.4.3) */
enum {
	CC_DFSELECT = 0x00,
	CC_DF = 0x04,
	CC_GFSELECT = 0x08,
	CC_GF = 0x0c,
	CC_MSIX = 0x10,
	CC_NUMQ = 0x12,
	CC_STATUS = 0x14,
	CC_CFGGEN = 0x15,
	CC_Q_SELECT = 0x16,
	CC_Q_SIZE = 0x18,
	CC_Q_MSIX = 0x1a,
	CC_Q_ENABLE = 0x1c,
	CC_Q_NOFF = 0x1e,
	CC_Q_DESCLO = 0x20,
	CC_Q_DESCHI = 0x24,
	CC_Q_AVAILLO = 0x28,
	CC_Q_AVAILHI = 0x2c,
	CC_Q_USEDLO = 0x30,
	CC_Q_USEDHI = 0x34,
	CC_SIZE = 0x38,
};

static void log_once(struct virtio_dev *v, const char *why, const char *outcome)
{
	if (v->broken_logged)
		return;
	v->broken_logged = 1;
	fprintf(stderr, "corral: %s at 00:%02x.0: %s; %s\n", v->name, v->pci.slot, why, outcome);
}

static void raise_config(struct virtio_dev *v)
{
	v->s.isr |= 2;
	if (pci_msix_enabled(&v->pci)) {
		if (v->s.config_msix != VIRTIO_MSI_NO_VECTOR)
			pci_msix_notify(&v->pci, v->s.config_msix);
	} else {
		pci_intx_set(&v->pci, 1);
	}
}

void virtio_config_changed(struct virtio_dev *v)
{
	v->s.config_gen++;
	if (v->s.status & VIRTIO_STATUS_DRIVER_OK)
		raise_config(v);
}

void virtio_set_needs_reset(struct virtio_dev *v, const char *why)
{
	log_once(v, why, "the device needs a reset");
	if (v->s.status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	v->s.status |= VIRTIO_STATUS_NEEDS_RESET;
	/* §2.1.2: a device that set NEEDS_RESET after DRIVER_OK must send a
	 * configuration change notification */
	if (v->s.status & VIRTIO_STATUS_DRIVER_OK)
		raise_config(v);
}

int virtio_queue_live(const struct virtio_dev *v, unsigned q)
{
	return q < v->nq && v->s.q[q].ready && (v->s.status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(v->s.status & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_queue_notify(struct virtio_dev *v, unsigned q)
{
	if (q >= v->nq || !virtq_should_notify(&v->s.q[q], v->pci.m))
		return;
	if (pci_msix_enabled(&v->pci)) {
		if (v->s.q[q].msix_vector != VIRTIO_MSI_NO_VECTOR)
			pci_msix_notify(&v->pci, v->s.q[q].msix_vector);
		return;
	}
	v->s.isr |= 1;
	pci_intx_set(&v->pci, 1);
}

static void virtio_reset(struct virtio_dev *v)
{
	memset(&v->s, 0, sizeof(v->s));
	v->s.config_msix = VIRTIO_MSI_NO_VECTOR;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		v->s.q[q].size = VIRTQ_MAX_SIZE;
		v->s.q[q].msix_vector = VIRTIO_MSI_NO_VECTOR;
	}
	v->broken_logged = 0;
	pci_intx_set(&v->pci, 0);
	if (v->reset)
		v->reset(v);
}

/* FEATURES_OK (§3.1.1): accepted only for a subset of what we offer that
 * includes VERSION_1 (no legacy interface here). */
static void set_status(struct virtio_dev *v, uint8_t val)
{
	uint8_t old = v->s.status;
	if (val == 0) {
		virtio_reset(v);
		return;
	}
	val |= old & VIRTIO_STATUS_NEEDS_RESET; /* only a reset clears it */
	if ((val & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		uint64_t f = v->s.driver_features;
		if ((f & ~v->host_features) || !(f >> VIRTIO_F_VERSION_1 & 1)) {
			log_once(v,
				 (f & ~v->host_features) ? "driver accepted features not offered"
							 : "driver did not accept VIRTIO_F_VERSION_1",
				 "FEATURES_OK refused");
			/* refused: the driver reads FEATURES_OK back clear; the
			 * device is unusable until a reset */
			val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
			val |= VIRTIO_STATUS_NEEDS_RESET;
		}
	}
	v->s.status = val;
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(val & VIRTIO_STATUS_FEATURES_OK))
		virtio_set_needs_reset(v, "DRIVER_OK without FEATURES_OK");
	/* what the driver started may have queued work already */
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) && v->notify)
		for (unsigned q = 0; q < v->nq; q++)
			if (virtio_queue_live(v, q))
				v->notify(v, q);
}

static struct virtq *selq(struct virtio_dev *v)
{
	return v->s.queue_sel < v->nq ? &v->s.q[v->s.queue_sel] : NULL;
}

static uint32_t common_read(struct virtio_dev *v, unsigned off)
{
	struct virtq *q = selq(v);
	switch (off) {
	case CC_DFSELECT: return v->s.dev_feature_sel;
	case CC_DF: return v->s.dev_feature_sel < 2 ? (uint32_t)(v->host_features >> (32 * v->s.dev_feature_sel)) : 0;
	case CC_GFSELECT: return v->s.drv_feature_sel;
	case CC_GF:
		return v->s.drv_feature_sel < 2 ? (uint32_t)(v->s.driver_features >> (32 * v->s.drv_feature_sel)) : 0;
	case CC_MSIX: return v->s.config_msix;
	case CC_NUMQ: return v->nq;
	case CC_STATUS: return v->s.status;
	case CC_CFGGEN: return v->s.config_gen;
	case CC_Q_SELECT: return v->s.queue_sel;
	case CC_Q_SIZE: return q ? q->size : 0;
	case CC_Q_MSIX: return q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
	case CC_Q_ENABLE: return q ? q->ready : 0;
	case CC_Q_NOFF: return q ? v->s.queue_sel : 0;
	case CC_Q_DESCLO: return q ? (uint32_t)q->desc : 0;
	case CC_Q_DESCHI: return q ? (uint32_t)(q->desc >> 32) : 0;
	case CC_Q_AVAILLO: return q ? (uint32_t)q->avail : 0;
	case CC_Q_AVAILHI: return q ? (uint32_t)(q->avail >> 32) : 0;
	case CC_Q_USEDLO: return q ? (uint32_t)q->used : 0;
	case CC_Q_USEDHI: return q ? (uint32_t)(q->used >> 32) : 0;
	default: return 0;
	}
}

static void set_lo(uint64_t *r, uint32_t v)
{
	*r = (*r & ~0xffffffffull) | v;
}

static void set_hi(uint64_t *r, uint32_t v)
{
	*r = (*r & 0xffffffffull) | (uint64_t)v << 32;
}

static uint16_t msix_vec(struct virtio_dev *v, uint32_t val)
{
	/* §4.1.4.3: a vector the device cannot use reads back NO_VECTOR */
	return val < v->pci.msix_nvec ? (uint16_t)val : VIRTIO_MSI_NO_VECTOR;
}

static void common_write(struct virtio_dev *v, unsigned off, uint32_t val)
{
	struct virtq *q = selq(v);
	/* §4.1.4.3.2: queue and feature registers are the driver's only
	 * before DRIVER_OK / FEATURES_OK; later writes are ignored */
	int q_open = q && !q->ready;
	switch (off) {
	case CC_DFSELECT: v->s.dev_feature_sel = val; break;
	case CC_GFSELECT: v->s.drv_feature_sel = val; break;
	case CC_GF:
		if (v->s.drv_feature_sel < 2 && !(v->s.status & VIRTIO_STATUS_FEATURES_OK)) {
			if (v->s.drv_feature_sel)
				set_hi(&v->s.driver_features, val);
			else
				set_lo(&v->s.driver_features, val);
		}
		break;
	case CC_MSIX: v->s.config_msix = msix_vec(v, val); break;
	case CC_STATUS: set_status(v, (uint8_t)val); break;
	case CC_Q_SELECT: v->s.queue_sel = (uint16_t)val; break;
	case CC_Q_SIZE:
		if (q_open)
			q->size = (uint16_t)val;
		break;
	case CC_Q_MSIX:
		if (q)
			q->msix_vector = msix_vec(v, val);
		break;
	case CC_Q_ENABLE:
		if (!q_open || val != 1)
			break;
		q->event_idx = !!(v->s.driver_features >> VIRTIO_F_EVENT_IDX & 1);
		q->indirect = !!(v->s.driver_features >> VIRTIO_F_INDIRECT_DESC & 1);
		if (virtq_check(q, v->pci.m) < 0) {
			virtio_set_needs_reset(v, "queue enabled with a bad size or rings outside guest RAM");
			break;
		}
		q->last_avail = q->used_idx = 0;
		q->signalled_valid = 0;
		q->ready = 1;
		break;
	case CC_Q_DESCLO:
		if (q_open)
			set_lo(&q->desc, val);
		break;
	case CC_Q_DESCHI:
		if (q_open)
			set_hi(&q->desc, val);
		break;
	case CC_Q_AVAILLO:
		if (q_open)
			set_lo(&q->avail, val);
		break;
	case CC_Q_AVAILHI:
		if (q_open)
			set_hi(&q->avail, val);
		break;
	case CC_Q_USEDLO:
		if (q_open)
			set_lo(&q->used, val);
		break;
	case CC_Q_USEDHI:
		if (q_open)
			set_hi(&q->used, val);
		break;
	default: break;
	}
}

/* Register widths in the common structure: an access must match one
 * register exactly (§4.1.3.1: the driver uses the register's width). */
static unsigned common_width(unsigned off)
{
	if (off >= CC_Q_DESCLO && off < CC_SIZE)
		return 4;
	switch (off) {
	case CC_DFSELECT:
	case CC_DF:
	case CC_GFSELECT:
	case CC_GF: return 4;
	case CC_STATUS:
	case CC_CFGGEN: return 1;
	default: return off < CC_SIZE && !(off & 1) ? 2 : 0;
	}
}

uint64_t virtio_bar_read(void *opaque, uint64_t off, unsigned size)
{
	struct virtio_dev *v = opaque;
	if (off < VIRTIO_COMMON_OFF + CC_SIZE) {
		unsigned o = (unsigned)off;
		if (size == 8 && common_width(o) == 4 && common_width(o + 4) == 4 && !(o & 7))
			return common_read(v, o) | (uint64_t)common_read(v, o + 4) << 32;
		return common_width(o) == size ? common_read(v, o) : 0;
	}
	if (off == VIRTIO_ISR_OFF) {
		/* §4.1.4.5: reading the ISR status clears it and the INTx line */
		uint8_t isr = v->s.isr;
		v->s.isr = 0;
		pci_intx_set(&v->pci, 0);
		return isr;
	}
	if (off >= VIRTIO_DEVCFG_OFF && off - VIRTIO_DEVCFG_OFF + size <= v->config_len) {
		uint64_t val = 0;
		memcpy(&val, v->config + (off - VIRTIO_DEVCFG_OFF), size);
		return val;
	}
	return 0;
}

void virtio_bar_write(void *opaque, uint64_t off, unsigned size, uint64_t val)
{
	struct virtio_dev *v = opaque;
	if (off < VIRTIO_COMMON_OFF + CC_SIZE) {
		unsigned o = (unsigned)off;
		if (size == 8 && common_width(o) == 4 && common_width(o + 4) == 4 && !(o & 7)) {
			common_write(v, o, (uint32_t)val);
			common_write(v, o + 4, (uint32_t)(val >> 32));
		} else if (common_width(o) == size) {
			common_write(v, o, (uint32_t)val);
		}
		return;
	}
	if (off >= VIRTIO_NOTIFY_OFF && off < VIRTIO_NOTIFY_OFF + VIRTIO_NOTIFY_MULT * v->nq) {
		/* §4.1.4.4: the queue's notify address; the value is its index */
		unsigned q = (unsigned)(off - VIRTIO_NOTIFY_OFF) / VIRTIO_NOTIFY_MULT;
		(void)val;
		if (virtio_queue_live(v, q) && v->notify)
			v->notify(v, q);
		return;
	}
	/* the device configuration is read-only but for the balloon's */
	if (off >= VIRTIO_DEVCFG_OFF && off - VIRTIO_DEVCFG_OFF + size <= v->config_len && v->config_write)
		v->config_write(v, (unsigned)(off - VIRTIO_DEVCFG_OFF), size, val);
}

/* The PCI configuration access capability (§4.1.4.9): the driver picks a
 * BAR, offset and length (1, 2 or 4) in the capability, then reading or
 * writing pci_cfg_data at cap + 16 accesses the BAR there. */
static void pci_cfg_window(struct pci_dev *d, unsigned off, unsigned size, int write)
{
	struct virtio_dev *v = (struct virtio_dev *)d;
	unsigned cap = v->cfg_cap;
	if (!cap || off + size <= cap + 16 || off >= cap + 20)
		return;
	uint8_t *c = d->s.cfg + cap;
	uint32_t boff, blen;
	memcpy(&boff, c + 8, 4);
	memcpy(&blen, c + 12, 4);
	if (c[4] != VIRTIO_BAR || (blen != 1 && blen != 2 && blen != 4) || (boff & (blen - 1)) ||
	    boff > VIRTIO_BAR_SIZE - blen)
		return;
	if (write) {
		uint32_t val = 0;
		memcpy(&val, c + 16, blen);
		virtio_bar_write(v, boff, blen, val);
	} else {
		uint32_t val = (uint32_t)virtio_bar_read(v, boff, blen);
		memcpy(c + 16, &val, 4);
	}
}

static void pci_reset_hook(struct pci_dev *d)
{
	virtio_reset((struct virtio_dev *)d);
}

static void pci_destroy_hook(struct pci_dev *d)
{
	struct virtio_dev *v = (struct virtio_dev *)d;
	if (v->destroy)
		v->destroy(v);
}

/* struct virtio_pci_cap (§4.1.4), 16 bytes, or 20 with one more dword
 * (the notify multiplier, or the access window's data). */
static int add_cap(struct pci_dev *d, uint8_t type, uint8_t bar, uint32_t off, uint32_t len, unsigned caplen,
		   uint32_t extra)
{
	uint8_t cap[20] = {PCI_CAP_ID_VNDR, 0, (uint8_t)caplen, type, bar};
	memcpy(cap + 8, &off, 4);
	memcpy(cap + 12, &len, 4);
	memcpy(cap + 16, &extra, 4);
	return pci_cap_add(d, cap, caplen);
}

int virtio_pci_init(struct virtio_dev *v, struct machine *m, unsigned type, uint32_t pci_class, unsigned nq)
{
	int err;
	if (nq < 1 || nq > VIRTIO_MAX_QUEUES || v->config_len > VIRTIO_NOTIFY_OFF - VIRTIO_DEVCFG_OFF)
		return -EINVAL;
	v->nq = nq;
	v->host_features |= 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_F_EVENT_IDX | 1ull << VIRTIO_F_INDIRECT_DESC;
	/* §4.1.2.1: modern-only IDs, revision 1, subsystem ID >= 0x40 */
	pci_dev_init(&v->pci, v->name, VIRTIO_PCI_VENDOR, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + type), pci_class, 1,
		     VIRTIO_PCI_VENDOR, 0x40 + (uint16_t)type);
	if ((err = pci_bar_add(&v->pci, VIRTIO_BAR, VIRTIO_BAR_SIZE, 1, virtio_bar_read, virtio_bar_write, v)) < 0 ||
	    (err = pci_bar_add(&v->pci, VIRTIO_MSIX_BAR, 0x1000, 0, NULL, NULL, NULL)) < 0 ||
	    (err = pci_msix_add(&v->pci, VIRTIO_MSIX_BAR, nq + 1, 0, 0x800)) < 0)
		return err;
	if ((err = add_cap(&v->pci, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_BAR, VIRTIO_COMMON_OFF, CC_SIZE, 16, 0)) < 0 ||
	    (err = add_cap(&v->pci, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_BAR, VIRTIO_ISR_OFF, 1, 16, 0)) < 0 ||
	    (err = add_cap(&v->pci, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_BAR, VIRTIO_NOTIFY_OFF, VIRTIO_NOTIFY_MULT * nq,
			   20, VIRTIO_NOTIFY_MULT)) < 0 ||
	    (v->config_len && (err = add_cap(&v->pci, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_BAR, VIRTIO_DEVCFG_OFF,
					     v->config_len, 16, 0)) < 0) ||
	    (err = add_cap(&v->pci, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, 20, 0)) < 0)
		return err;
	/* the access window: bar, offset, length and data are the driver's */
	v->cfg_cap = (unsigned)err;
	v->pci.wmask[err + 4] = 0xff;
	memset(v->pci.wmask + err + 8, 0xff, 12);
	v->pci.cfg_access = pci_cfg_window;
	v->pci.reset = pci_reset_hook;
	v->pci.destroy = pci_destroy_hook;
	if ((err = pci_dev_register(m, &v->pci)) < 0)
		return err;
	virtio_reset(v);
	return 0;
}

/* Takes the guest's values from st, then makes them consistent. */
static void virtio_commit(struct virtio_dev *v, struct virtio_state *stp)
{
	struct virtio_state st = *stp;
	/* Take the guest's values, then make them consistent: a queue whose
	 * rings do not check out is not ready, vectors are in range. */
	st.driver_features &= v->host_features;
	if (st.config_msix >= v->pci.msix_nvec)
		st.config_msix = VIRTIO_MSI_NO_VECTOR;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct virtq *vq = &st.q[q];
		if (vq->msix_vector >= v->pci.msix_nvec)
			vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
		vq->event_idx = !!(st.driver_features >> VIRTIO_F_EVENT_IDX & 1);
		vq->indirect = !!(st.driver_features >> VIRTIO_F_INDIRECT_DESC & 1);
		vq->signalled_valid = !!vq->signalled_valid;
		if (q >= v->nq) {
			memset(vq, 0, sizeof(*vq));
			vq->msix_vector = VIRTIO_MSI_NO_VECTOR;
		} else if (vq->ready && virtq_check(vq, v->pci.m) < 0) {
			vq->ready = 0;
		} else {
			vq->ready = !!vq->ready;
		}
	}
	v->s = st;
}

struct virtio_dev *virtio_from_pci(struct pci_dev *d)
{
	return d && d->reset == pci_reset_hook ? (struct virtio_dev *)d : NULL;
}

void virtio_state_save(const struct virtio_dev *v, struct state_writer *w)
{
	const struct virtio_state *s = &v->s;
	state_put_u64(w, s->driver_features);
	state_put_u32(w, s->dev_feature_sel);
	state_put_u32(w, s->drv_feature_sel);
	state_put_u16(w, s->config_msix);
	state_put_u16(w, s->queue_sel);
	state_put_u8(w, s->status);
	state_put_u8(w, s->config_gen);
	state_put_u8(w, s->isr);
	state_put_u32(w, v->nq);
	for (unsigned q = 0; q < v->nq; q++) {
		const struct virtq *vq = &s->q[q];
		state_put_u64(w, vq->desc);
		state_put_u64(w, vq->avail);
		state_put_u64(w, vq->used);
		state_put_u16(w, vq->size);
		state_put_bool(w, vq->ready);
		state_put_u16(w, vq->msix_vector);
		state_put_u16(w, vq->last_avail);
		state_put_u16(w, vq->used_idx);
		state_put_u16(w, vq->signalled_used);
		state_put_bool(w, vq->signalled_valid);
	}
}

int virtio_state_load(struct virtio_dev *v, struct state_reader *r)
{
	struct virtio_state st = {0};
	st.driver_features = state_get_u64(r);
	st.dev_feature_sel = state_get_u32(r);
	st.drv_feature_sel = state_get_u32(r);
	st.config_msix = state_get_u16(r);
	st.queue_sel = state_get_u16(r);
	st.status = state_get_u8(r);
	st.config_gen = state_get_u8(r);
	st.isr = state_get_u8(r);
	uint32_t nq = state_get_u32(r);
	if (state_reader_ok(r) && nq != v->nq)
		state_fail(r, "%s: %u queues, this device has %u", v->name, nq, v->nq);
	for (unsigned q = 0; q < v->nq && state_reader_ok(r); q++) {
		struct virtq *vq = &st.q[q];
		vq->desc = state_get_u64(r);
		vq->avail = state_get_u64(r);
		vq->used = state_get_u64(r);
		vq->size = state_get_u16(r);
		vq->ready = state_get_bool(r);
		vq->msix_vector = state_get_u16(r);
		vq->last_avail = state_get_u16(r);
		vq->used_idx = state_get_u16(r);
		vq->signalled_used = state_get_u16(r);
		vq->signalled_valid = state_get_bool(r);
		/* virtio 1.2 §4.1.4.3: a power of two no larger than offered */
		if (state_reader_ok(r) && (vq->size > VIRTQ_MAX_SIZE || (vq->size & (vq->size - 1))))
			state_fail(r, "%s: queue %u: size %u is not a power of two up to %d", v->name, q, vq->size,
				   VIRTQ_MAX_SIZE);
		/* a live queue's rings must lie inside guest RAM */
		if (state_reader_ok(r) && vq->ready && (!vq->size || virtq_check(vq, v->pci.m) < 0))
			state_fail(r, "%s: queue %u: rings outside guest RAM or misaligned", v->name, q);
	}
	if (!state_section_done(r))
		return -EINVAL;
	virtio_commit(v, &st);
	return 0;
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The smallest vmbus host endpoint: what a VMM needs to answer the first
 * message of a guest's vmbus driver, relayed by KVM_CAP_HYPERV_NESTED_RELAY
 * (or posted by a non-nested guest) as a KVM_EXIT_HYPERV HvPostMessage.
 *
 * Layouts follow the Hyper-V TLFS (HV_INPUT_POST_MESSAGE, the SynIC message
 * slot) and the vmbus channel messages as Linux defines them
 * (include/linux/hyperv.h).
 */
#ifndef NESTKIT_VMBUS_H
#define NESTKIT_VMBUS_H

#include <stddef.h>
#include <stdint.h>

/* TLFS hypercall status values a VMM returns for HvPostMessage. */
#define NK_HV_STATUS_SUCCESS			0x0000
#define NK_HV_STATUS_INVALID_PARAMETER		0x0005
#define NK_HV_STATUS_ACCESS_DENIED		0x0006
#define NK_HV_STATUS_INVALID_CONNECTION_ID	0x0012

#define NK_HV_MESSAGE_PAYLOAD_SIZE	240
/* SynIC message type of vmbus channel messages. */
#define NK_HV_MESSAGE_VMBUS		1

/* TLFS HV_INPUT_POST_MESSAGE: the 256 bytes at the hypercall's input GPA. */
struct nk_hv_post_message_input {
	uint32_t connection_id;
	uint32_t reserved;
	uint32_t message_type;
	uint32_t payload_size;
	uint8_t payload[NK_HV_MESSAGE_PAYLOAD_SIZE];
} __attribute__((packed));

/* One SynIC message slot (TLFS HV_MESSAGE), 256 bytes. */
struct nk_hv_message {
	uint32_t message_type;
	uint8_t payload_size;
	uint8_t message_flags;
	uint8_t reserved[2];
	uint64_t sender;
	uint8_t payload[NK_HV_MESSAGE_PAYLOAD_SIZE];
} __attribute__((packed));

/* vmbus channel messages (Linux include/linux/hyperv.h). */
#define NK_VMBUS_CONNECTION_ID		1	/* InitiateContact before 5.0 */
#define NK_VMBUS_CONNECTION_ID_4	4	/* InitiateContact from 5.0 */
#define NK_VMBUS_MSG_GPADL_HEADER	8
#define NK_VMBUS_MSG_GPADL_BODY		9
#define NK_VMBUS_MSG_INITIATE_CONTACT	14
#define NK_VMBUS_MSG_VERSION_RESPONSE	15
#define NK_VMBUS_VERSION(major, minor)	(((uint32_t)(major) << 16) | (minor))

struct nk_vmbus_msg_header {
	uint32_t msgtype;
	uint32_t padding;
} __attribute__((packed));

struct nk_vmbus_initiate_contact {
	struct nk_vmbus_msg_header header;
	uint32_t vmbus_version_requested;
	uint32_t target_vcpu;
	uint8_t msg_sint;		/* 5.0+: the SINT for host messages */
	uint8_t msg_vtl;
	uint8_t reserved[2];
	uint32_t feature_flags;
	uint64_t monitor_page1;
	uint64_t monitor_page2;
} __attribute__((packed));

struct nk_vmbus_version_response {
	struct nk_vmbus_msg_header header;
	uint8_t version_supported;
	uint8_t connection_state;
	uint16_t padding;
	uint32_t msg_conn_id;
} __attribute__((packed));

struct nk_vmbus_host {
	uint32_t version;	/* negotiated, 0 until InitiateContact succeeds */
	uint8_t msg_sint;	/* where replies go */
	uint32_t target_vcpu;
	/*
	 * Set by the VMM for a message that KVM relayed from an L2
	 * (KVM_CAP_HYPERV_NESTED_RELAY): GPAs inside it are L2 GPAs that
	 * neither KVM nor the VMM can check against L1's nested page tables
	 * (api.rst), so the endpoint never acts on them.  It refuses GPADLs
	 * and leaves InitiateContact's monitor pages unused.
	 */
	int relayed_l2;
	int monitor_pages_unused;	/* a relayed InitiateContact named some */
	/* The L2 taken for L1's root partition (nk_vmbus_relay_allowed()). */
	int root_known;
	uint64_t root;
};

/*
 * Handle one HvPostMessage whose input (@len bytes, normally 256, read at
 * the exit's params[0]) is at @input.  Returns the TLFS status to put in
 * hyperv.u.hcall.result.  If the message needs an answer, fills @reply and
 * sets *@has_reply; @err gets a message for anything malformed or ignored.
 */
uint16_t nk_vmbus_post_message(struct nk_vmbus_host *host, const void *input, size_t len,
			       struct nk_hv_message *reply, int *has_reply,
			       char *err, size_t errlen);

/*
 * Should the VMM serve a relayed call of the L2 whose nested page table root
 * is @l2_root (kvm_run's hyperv.u.hcall.nested_root)?  @direct_grant_only:
 * KVM relayed it on L1's direct hypercall grant alone
 * (KVM_HYPERV_HCALL_NESTED_DIRECT_GRANT), which L1 gives to any L2 it lets
 * flush TLBs.  Trust on first use, as api.rst describes: the L2 of the first
 * relayed InitiateContact (@input, @len: the message) is L1's root
 * partition; a call on the direct grant alone is served only from that L2,
 * or if it is that first InitiateContact.  A call that L1 authorized with
 * the TLFS inter-partition grant is always served.  Returns 1 to serve, 0
 * to refuse (with a reason in @err).  The VMM resets root_known when the
 * guest reboots (L1 then starts a new root partition).
 */
int nk_vmbus_relay_allowed(struct nk_vmbus_host *host, uint64_t l2_root, int direct_grant_only,
			   const void *input, size_t len, char *err, size_t errlen);

/*
 * Put @msg into slot @sint of a SynIC message page (@simp, 4 KiB, the guest
 * page at HV_X64_MSR_SIMP).  Returns 0, -EBUSY if the slot still holds an
 * unread message (the guest clears message_type when it has read it), or
 * -EINVAL for a SINT out of range.  The type is written last, so a guest
 * polling the slot never sees a partial message.
 */
int nk_synic_deliver(void *simp, unsigned int sint, const struct nk_hv_message *msg);

#endif

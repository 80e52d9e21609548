// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nestkit/vmbus.h"

_Static_assert(sizeof(struct nk_hv_post_message_input) == 256, "HV_INPUT_POST_MESSAGE");
_Static_assert(sizeof(struct nk_hv_message) == 256, "HV_MESSAGE");
_Static_assert(sizeof(struct nk_vmbus_initiate_contact) == 40, "vmbus initiate contact");
_Static_assert(sizeof(struct nk_vmbus_version_response) == 16, "vmbus version response");

#define SYNIC_SINT_COUNT	16

/* Newest first: the versions this endpoint accepts. */
static const uint32_t supported_versions[] = {
	NK_VMBUS_VERSION(5, 3), NK_VMBUS_VERSION(5, 2), NK_VMBUS_VERSION(5, 1),
	NK_VMBUS_VERSION(5, 0), NK_VMBUS_VERSION(4, 1), NK_VMBUS_VERSION(4, 0),
};

static int version_supported(uint32_t v)
{
	size_t i;

	for (i = 0; i < sizeof(supported_versions) / sizeof(supported_versions[0]); i++)
		if (supported_versions[i] == v)
			return 1;
	return 0;
}

static uint16_t initiate_contact(struct nk_vmbus_host *host, uint32_t conn_id,
				 const uint8_t *payload, uint32_t size,
				 struct nk_hv_message *reply, int *has_reply,
				 char *err, size_t errlen)
{
	struct nk_vmbus_version_response resp = {
		.header.msgtype = NK_VMBUS_MSG_VERSION_RESPONSE,
	};
	struct nk_vmbus_initiate_contact ic;
	uint32_t v;

	if (size < sizeof(ic)) {
		snprintf(err, errlen, "InitiateContact: %u bytes, need %zu", size, sizeof(ic));
		return NK_HV_STATUS_INVALID_PARAMETER;
	}
	memcpy(&ic, payload, sizeof(ic));
	v = ic.vmbus_version_requested;
	/* From 5.0 the guest must use connection 4, before it connection 1. */
	if ((v >= NK_VMBUS_VERSION(5, 0)) != (conn_id == NK_VMBUS_CONNECTION_ID_4)) {
		snprintf(err, errlen, "InitiateContact for version %u.%u on connection %u",
			 v >> 16, v & 0xffff, conn_id);
		return NK_HV_STATUS_INVALID_CONNECTION_ID;
	}
	/* The SINT the replies go to: a SynIC has 16 (found by fuzz_vmbus). */
	if (v >= NK_VMBUS_VERSION(5, 0) && ic.msg_sint >= SYNIC_SINT_COUNT) {
		snprintf(err, errlen, "InitiateContact: SINT %u, a SynIC has %u",
			 ic.msg_sint, SYNIC_SINT_COUNT);
		return NK_HV_STATUS_INVALID_PARAMETER;
	}
	/* L2 GPAs: see struct nk_vmbus_host. */
	if (host->relayed_l2 && (ic.monitor_page1 || ic.monitor_page2))
		host->monitor_pages_unused = 1;
	if (version_supported(v)) {
		host->version = v;
		host->target_vcpu = ic.target_vcpu;
		host->msg_sint = v >= NK_VMBUS_VERSION(5, 0) ? ic.msg_sint : 2;
		resp.version_supported = 1;
		/* 5.0+: the connection for later messages (this endpoint keeps 4). */
		resp.msg_conn_id = v >= NK_VMBUS_VERSION(5, 0) ? NK_VMBUS_CONNECTION_ID_4 : 0;
	} else {
		/* The guest retries with an older version. */
		snprintf(err, errlen, "InitiateContact: version %u.%u not supported",
			 v >> 16, v & 0xffff);
	}

	memset(reply, 0, sizeof(*reply));
	reply->message_type = NK_HV_MESSAGE_VMBUS;
	reply->payload_size = sizeof(resp);
	memcpy(reply->payload, &resp, sizeof(resp));
	*has_reply = 1;
	return NK_HV_STATUS_SUCCESS;
}

uint16_t nk_vmbus_post_message(struct nk_vmbus_host *host, const void *input, size_t len,
			       struct nk_hv_message *reply, int *has_reply,
			       char *err, size_t errlen)
{
	struct nk_hv_post_message_input in;
	struct nk_vmbus_msg_header hdr;

	*has_reply = 0;
	if (errlen)
		err[0] = '\0';
	if (len < sizeof(in)) {
		snprintf(err, errlen, "HvPostMessage input: %zu bytes, need %zu", len, sizeof(in));
		return NK_HV_STATUS_INVALID_PARAMETER;
	}
	memcpy(&in, input, sizeof(in));
	/* TLFS: 1..240 bytes; types with bit 31 belong to the hypervisor. */
	if (in.payload_size == 0 || in.payload_size > NK_HV_MESSAGE_PAYLOAD_SIZE ||
	    in.message_type == 0 || (in.message_type & 0x80000000u)) {
		snprintf(err, errlen, "HvPostMessage: message type 0x%x, payload size %u",
			 in.message_type, in.payload_size);
		return NK_HV_STATUS_INVALID_PARAMETER;
	}
	if (in.connection_id != NK_VMBUS_CONNECTION_ID &&
	    in.connection_id != NK_VMBUS_CONNECTION_ID_4) {
		snprintf(err, errlen, "HvPostMessage: no port for connection %u", in.connection_id);
		return NK_HV_STATUS_INVALID_CONNECTION_ID;
	}
	if (in.payload_size < sizeof(hdr)) {
		snprintf(err, errlen, "vmbus message: %u bytes, no header", in.payload_size);
		return NK_HV_STATUS_INVALID_PARAMETER;
	}
	memcpy(&hdr, in.payload, sizeof(hdr));
	switch (hdr.msgtype) {
	case NK_VMBUS_MSG_INITIATE_CONTACT:
		return initiate_contact(host, in.connection_id, in.payload, in.payload_size,
					reply, has_reply, err, errlen);
	case NK_VMBUS_MSG_GPADL_HEADER:
	case NK_VMBUS_MSG_GPADL_BODY:
		if (host->relayed_l2) {
			snprintf(err, errlen,
				 "GPADL from a relayed L2 refused: its page numbers are L2 GPAs that cannot be checked");
			return NK_HV_STATUS_ACCESS_DENIED;
		}
		/* fall through */
	default:
		/* Delivered, but this endpoint has nothing to say to it. */
		snprintf(err, errlen, "vmbus message type %u not handled", hdr.msgtype);
		return NK_HV_STATUS_SUCCESS;
	}
}

static int is_initiate_contact(const void *input, size_t len)
{
	struct nk_hv_post_message_input in;
	struct nk_vmbus_msg_header hdr;

	if (len < sizeof(in))
		return 0;
	memcpy(&in, input, sizeof(in));
	if (in.payload_size < sizeof(hdr) || in.payload_size > NK_HV_MESSAGE_PAYLOAD_SIZE)
		return 0;
	memcpy(&hdr, in.payload, sizeof(hdr));
	return hdr.msgtype == NK_VMBUS_MSG_INITIATE_CONTACT;
}

int nk_vmbus_relay_allowed(struct nk_vmbus_host *host, uint64_t l2_root, int direct_grant_only,
			   const void *input, size_t len, char *err, size_t errlen)
{
	int contact = is_initiate_contact(input, len);

	if (errlen)
		err[0] = '\0';
	/* The first relayed InitiateContact names the root partition. */
	if (!host->root_known && contact) {
		host->root_known = 1;
		host->root = l2_root;
		return 1;
	}
	if (!direct_grant_only)
		return 1;
	if (host->root_known && l2_root == host->root)
		return 1;
	snprintf(err, errlen, host->root_known ?
		 "L2 with nested root 0x%llx is not the root partition (0x%llx): only L1's direct grant vouches for it" :
		 "L2 with nested root 0x%llx: no root partition known yet (0x%llx), and only L1's direct grant vouches for it",
		 (unsigned long long)l2_root, (unsigned long long)host->root);
	return 0;
}

int nk_synic_deliver(void *simp, unsigned int sint, const struct nk_hv_message *msg)
{
	char *slot;
	uint32_t *type;

	if (sint >= SYNIC_SINT_COUNT)
		return -EINVAL;
	slot = (char *)simp + sint * sizeof(*msg);
	/* message_type starts the slot, which is 256-byte aligned in the page. */
	type = (uint32_t *)(void *)slot;
	if (__atomic_load_n(type, __ATOMIC_ACQUIRE))
		return -EBUSY;
	memcpy(slot + sizeof(msg->message_type), (const char *)msg + sizeof(msg->message_type),
	       sizeof(*msg) - sizeof(msg->message_type));
	__atomic_store_n(type, msg->message_type, __ATOMIC_RELEASE);
	return 0;
}

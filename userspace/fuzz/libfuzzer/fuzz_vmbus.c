// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the vmbus endpoint's decoding of HvPostMessage input,
 * the bytes a guest (or a relayed L2) writes at the hypercall's input GPA.
 *
 * Input: one byte of endpoint state (bit 0: the message was relayed from
 * an L2; bit 1: a version was already negotiated; bit 2: the call came on
 * L1's direct grant alone), eight bytes of L2 nested root, then the message
 * bytes (normally 256; any length is passed as such).
 *
 * Besides "no crash, no sanitizer report", it checks what the header
 * promises: a status the TLFS knows; a reply only with success, as a vmbus
 * message of at most 240 bytes that nk_synic_deliver() puts in a SynIC slot
 * unchanged; from a relayed L2, never a GPADL accepted; the relay decision
 * consistent with trust on first use.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nestkit/vmbus.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t simp[4096];
	struct nk_vmbus_host host = { 0 };
	struct nk_hv_post_message_input in;
	struct nk_hv_message reply;
	uint64_t root;
	char err[256];
	int has_reply, allowed, msgtype = -1;
	uint16_t status;
	uint8_t state;

	if (size < 9)
		return 0;
	state = data[0];
	memcpy(&root, data + 1, sizeof(root));
	data += 9;
	size -= 9;

	host.relayed_l2 = state & 1;
	if (state & 2) {
		host.version = NK_VMBUS_VERSION(5, 0);
		host.msg_sint = 2;
	}
	if (size >= sizeof(in)) {
		memcpy(&in, data, sizeof(in));
		if (in.payload_size >= 8 && in.payload_size <= NK_HV_MESSAGE_PAYLOAD_SIZE)
			memcpy(&msgtype, in.payload, sizeof(uint32_t));
	}

	/* Not terminated unless the library terminates it. */
	memset(err, 0xff, sizeof(err));
	allowed = nk_vmbus_relay_allowed(&host, root, state & 4, data, size, err, sizeof(err));
	CHECK(allowed == 0 || allowed == 1);
	CHECK(memchr(err, '\0', sizeof(err)));
	/* The TLFS grant alone is always enough; a first InitiateContact names the root. */
	if (!(state & 4))
		CHECK(allowed);
	if (msgtype == NK_VMBUS_MSG_INITIATE_CONTACT)
		CHECK(allowed && host.root_known && host.root == root);

	memset(&reply, 0xa5, sizeof(reply));
	memset(err, 0xff, sizeof(err));
	status = nk_vmbus_post_message(&host, data, size, &reply, &has_reply, err, sizeof(err));
	CHECK(memchr(err, '\0', sizeof(err)));
	CHECK(status == NK_HV_STATUS_SUCCESS || status == NK_HV_STATUS_INVALID_PARAMETER ||
	      status == NK_HV_STATUS_ACCESS_DENIED || status == NK_HV_STATUS_INVALID_CONNECTION_ID);
	CHECK(has_reply == 0 || has_reply == 1);
	if (size < sizeof(in))
		CHECK(status == NK_HV_STATUS_INVALID_PARAMETER && !has_reply);
	if (host.relayed_l2 && (msgtype == NK_VMBUS_MSG_GPADL_HEADER ||
				msgtype == NK_VMBUS_MSG_GPADL_BODY))
		CHECK(status != NK_HV_STATUS_SUCCESS);
	if (has_reply) {
		CHECK(status == NK_HV_STATUS_SUCCESS);
		CHECK(reply.message_type == NK_HV_MESSAGE_VMBUS);
		CHECK(reply.payload_size >= 8 && reply.payload_size <= NK_HV_MESSAGE_PAYLOAD_SIZE);
		memset(simp, 0, sizeof(simp));
		CHECK(nk_synic_deliver(simp, host.msg_sint, &reply) == 0);
		CHECK(!memcmp(simp + (host.msg_sint) * sizeof(reply), &reply, sizeof(reply)));
		/* The slot is now full: a second message must wait. */
		CHECK(nk_synic_deliver(simp, host.msg_sint, &reply) == -EBUSY);
	}
	CHECK(nk_synic_deliver(simp, 16 + (state >> 4), &reply) == -EINVAL);
	return 0;
}

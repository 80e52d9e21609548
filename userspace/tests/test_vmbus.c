// SPDX-License-Identifier: GPL-2.0
/* Host unit tests for the vmbus endpoint and SynIC delivery. */
#include <errno.h>
#include <string.h>

#include "nestkit/vmbus.h"
#include "unit.h"

static struct nk_hv_post_message_input contact(uint32_t conn, uint32_t version, uint8_t sint)
{
	struct nk_hv_post_message_input in = {
		.connection_id = conn,
		.message_type = 1,
		.payload_size = sizeof(struct nk_vmbus_initiate_contact),
	};
	struct nk_vmbus_initiate_contact ic = {
		.header.msgtype = NK_VMBUS_MSG_INITIATE_CONTACT,
		.vmbus_version_requested = version,
		.target_vcpu = 0,
		.msg_sint = sint,
	};

	memcpy(in.payload, &ic, sizeof(ic));
	return in;
}

static uint16_t post(struct nk_vmbus_host *h, const struct nk_hv_post_message_input *in,
		     struct nk_hv_message *reply, int *has_reply, char *err)
{
	return nk_vmbus_post_message(h, in, sizeof(*in), reply, has_reply, err, 128);
}

static void test_initiate_contact(void)
{
	struct nk_hv_post_message_input in = contact(NK_VMBUS_CONNECTION_ID_4,
						     NK_VMBUS_VERSION(5, 0), 3);
	struct nk_vmbus_version_response resp;
	struct nk_vmbus_host h = { 0 };
	struct nk_hv_message reply;
	int has_reply;
	char err[128];

	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_SUCCESS);
	CHECK(has_reply);
	CHECK(reply.message_type == NK_HV_MESSAGE_VMBUS);
	CHECK(reply.payload_size == sizeof(resp));
	memcpy(&resp, reply.payload, sizeof(resp));
	CHECK(resp.header.msgtype == NK_VMBUS_MSG_VERSION_RESPONSE);
	CHECK(resp.version_supported == 1);
	CHECK(resp.msg_conn_id == NK_VMBUS_CONNECTION_ID_4);
	CHECK(h.version == NK_VMBUS_VERSION(5, 0));
	CHECK(h.msg_sint == 3);

	/* An unknown version is answered "not supported", state unchanged. */
	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(9, 9), 3);
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_SUCCESS);
	CHECK(has_reply);
	memcpy(&resp, reply.payload, sizeof(resp));
	CHECK(resp.version_supported == 0);
	CHECK(strstr(err, "not supported") != NULL);
	CHECK(h.version == NK_VMBUS_VERSION(5, 0));

	/* Pre-5.0 versions use connection 1 and SINT 2. */
	h.version = 0;
	in = contact(NK_VMBUS_CONNECTION_ID, NK_VMBUS_VERSION(4, 0), 7);
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_SUCCESS);
	CHECK(h.version == NK_VMBUS_VERSION(4, 0) && h.msg_sint == 2);

	/* ...and the wrong connection for the version is refused. */
	in = contact(NK_VMBUS_CONNECTION_ID, NK_VMBUS_VERSION(5, 0), 3);
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_CONNECTION_ID);
	CHECK(!has_reply);
}

static void test_malformed(void)
{
	struct nk_hv_post_message_input in;
	struct nk_vmbus_host h = { 0 };
	struct nk_hv_message reply;
	int has_reply;
	char err[128];

	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	in.payload_size = NK_HV_MESSAGE_PAYLOAD_SIZE + 1;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);
	CHECK(strstr(err, "payload size 241") != NULL);

	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	in.payload_size = 0;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);

	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	in.message_type = 0;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);
	in.message_type = 0x80000001u;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);

	in = contact(77, NK_VMBUS_VERSION(5, 0), 2);
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_CONNECTION_ID);
	CHECK(strstr(err, "connection 77") != NULL);

	/* Too short for a vmbus header, and for an InitiateContact. */
	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	in.payload_size = 4;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);
	in.payload_size = 12;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);
	CHECK(strstr(err, "InitiateContact") != NULL);

	/* Replies would go to a SINT the SynIC does not have: no contact. */
	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 16);
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_INVALID_PARAMETER);
	CHECK(!has_reply && h.version == 0);
	CHECK(strstr(err, "SINT 16") != NULL);

	/* An input shorter than HV_INPUT_POST_MESSAGE is not read past its end. */
	CHECK(nk_vmbus_post_message(&h, &in, 100, &reply, &has_reply, err, sizeof(err)) ==
	      NK_HV_STATUS_INVALID_PARAMETER);

	/* An unknown vmbus message is delivered, ignored, and said so. */
	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	in.payload[0] = 99;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_SUCCESS);
	CHECK(!has_reply);
	CHECK(strstr(err, "type 99 not handled") != NULL);
	CHECK(h.version == 0);
}

/* A relayed L2's messages: GPAs inside are L2 GPAs, never acted on. */
static void test_relayed_gpas(void)
{
	struct nk_hv_post_message_input in;
	struct nk_vmbus_initiate_contact ic;
	struct nk_vmbus_host h = { 0 };
	struct nk_hv_message reply;
	int has_reply;
	char err[128];

	/* A GPADL from L1 itself: delivered, not handled. */
	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	in.payload[0] = NK_VMBUS_MSG_GPADL_HEADER;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_SUCCESS);
	CHECK(strstr(err, "not handled") != NULL);

	/* From a relayed L2: refused, header and body. */
	h.relayed_l2 = 1;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_ACCESS_DENIED);
	CHECK(!has_reply && strstr(err, "L2 GPAs") != NULL);
	in.payload[0] = NK_VMBUS_MSG_GPADL_BODY;
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_ACCESS_DENIED);

	/* InitiateContact is answered; its monitor pages are left unused. */
	in = contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	memcpy(&ic, in.payload, sizeof(ic));
	ic.monitor_page1 = 0x1000;
	memcpy(in.payload, &ic, sizeof(ic));
	CHECK(post(&h, &in, &reply, &has_reply, err) == NK_HV_STATUS_SUCCESS);
	CHECK(has_reply && h.version == NK_VMBUS_VERSION(5, 0) && h.monitor_pages_unused);
}

/* Trust on first use of the root partition's nested root (api.rst). */
static void test_relay_allowed(void)
{
	struct nk_hv_post_message_input contact4 =
		contact(NK_VMBUS_CONNECTION_ID_4, NK_VMBUS_VERSION(5, 0), 2);
	struct nk_hv_post_message_input other = contact4;
	struct nk_vmbus_host h = { 0 };
	char err[256];

	other.payload[0] = NK_VMBUS_MSG_GPADL_HEADER;
	/* Before any InitiateContact, a direct-grant-only call is refused... */
	CHECK(!nk_vmbus_relay_allowed(&h, 0x5000, 1, &other, sizeof(other), err, sizeof(err)));
	CHECK(strstr(err, "no root partition known") != NULL && !h.root_known);
	/* ...and one the TLFS grant vouches for is served. */
	CHECK(nk_vmbus_relay_allowed(&h, 0x5000, 0, &other, sizeof(other), err, sizeof(err)));
	CHECK(!h.root_known);
	/* The first InitiateContact names the root partition. */
	CHECK(nk_vmbus_relay_allowed(&h, 0x7000, 1, &contact4, sizeof(contact4), err,
				     sizeof(err)));
	CHECK(h.root_known && h.root == 0x7000);
	CHECK(nk_vmbus_relay_allowed(&h, 0x7000, 1, &other, sizeof(other), err, sizeof(err)));
	/* Another L2 on the direct grant alone: refused, even InitiateContact. */
	CHECK(!nk_vmbus_relay_allowed(&h, 0x9000, 1, &contact4, sizeof(contact4), err,
				      sizeof(err)));
	CHECK(strstr(err, "0x9000 is not the root partition (0x7000)") != NULL);
	CHECK(h.root == 0x7000);
	/* A short input is no InitiateContact. */
	h.root_known = 0;
	CHECK(!nk_vmbus_relay_allowed(&h, 0x7000, 1, &contact4, 100, err, sizeof(err)));
}

static void test_synic_deliver(void)
{
	static struct nk_hv_message page[16];
	struct nk_hv_message msg = { .message_type = NK_HV_MESSAGE_VMBUS, .payload_size = 16 };

	msg.payload[0] = 0x42;
	CHECK(nk_synic_deliver(page, 2, &msg) == 0);
	CHECK(page[2].message_type == NK_HV_MESSAGE_VMBUS && page[2].payload[0] == 0x42);
	CHECK(page[1].message_type == 0 && page[3].message_type == 0);
	/* The guest has not consumed it yet. */
	CHECK(nk_synic_deliver(page, 2, &msg) == -EBUSY);
	page[2].message_type = 0;
	CHECK(nk_synic_deliver(page, 2, &msg) == 0);
	CHECK(nk_synic_deliver(page, 16, &msg) == -EINVAL);
}

int main(void)
{
	test_initiate_contact();
	test_malformed();
	test_relayed_gpas();
	test_relay_allowed();
	test_synic_deliver();
	return unit_done("test_vmbus");
}

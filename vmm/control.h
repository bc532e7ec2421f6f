/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control socket: RUN_DIR/NAME.sock, one JSON object per line in
 * each direction.  Requests: {"cmd": "status"|"pause"|"resume"|"stop"}.
 * Replies: {"ok": true, ...} or {"ok": false, "error": "..."}.
 * RUN_DIR/NAME.lock is held (flock) for the VM's lifetime, so a second VM
 * with the same name is refused while a stale socket is taken over.
 *
 * The server never blocks the event loop: it accepts and reads until EAGAIN
 * (the loop's multishot polls merge wake-ups), queues a reply a slow reader
 * does not take, and drops a client that stays idle (no complete request,
 * no reply taken) for the idle timeout.  The commands are a table given to
 * control_start() (vmm/control_cmds.c has the VM's), so the transport runs
 * without a VM in the unit tests.
 */
#ifndef HDVM_CONTROL_H
#define HDVM_CONTROL_H

#include <stddef.h>
#include <stdbool.h>

struct event_loop;
struct json_object;

#define HDVM_DEFAULT_RUN_DIR	"/run/hdvm"
#define CONTROL_MAX_REQUEST	4096
#define CONTROL_MAX_CONNS	16
#define CONTROL_IDLE_MS		10000	/* a client silent this long is dropped */
#define CONTROL_CLIENT_TIMEOUT_MS 10000	/* hdvm status/stop/...: wait this long */
#define CONTROL_PS_TIMEOUT_MS	1000	/* hdvm ps: each VM, all at once */
/* the refusal when every slot is taken; clients retry it until their deadline */
#define CONTROL_BUSY_ERROR	"too many control connections"
#define CONTROL_BUSY_RETRY_MS	3000

struct control;

/* One command: fill reply ("ok" and the rest, or control_reply_error()). */
struct control_cmd {
	const char *name;
	/* req: the whole request object (for commands with arguments) */
	void (*fn)(void *opaque, struct json_object *req, struct json_object *reply);
};

/* Claim the name (lock file) and bind the socket; NULL with a message on failure. */
struct control *control_open(const char *run_dir, const char *name);
int control_start(struct control *c, struct event_loop *loop,
		  const struct control_cmd *cmds, size_t nr_cmds, void *opaque);
/* Close connections, remove the socket and the lock file. */
void control_close(struct control *c);
void control_set_idle_timeout(struct control *c, int ms);
/* ms until the next idle deadline (-1: none): the event loop's wait bound. */
int control_timeout_ms(const struct control *c);
/* Drop clients whose idle deadline passed; call after each loop wake-up. */
void control_tick(struct control *c);
unsigned control_nr_conns(const struct control *c);

/* The request parser: one line in, the reply line out (malloc'd, no newline). */
char *control_handle_line(const struct control_cmd *cmds, size_t nr_cmds, void *opaque,
			  const char *line);
void control_reply_error(struct json_object *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The VM's commands (control_cmds.c); opaque is the struct vm. */
extern const struct control_cmd vm_control_cmds[];
extern const size_t vm_nr_control_cmds;

/* Client side (hdvm ps/status/...): send one request, get the reply line. */
int control_request(const char *run_dir, const char *name, const char *request_json,
		    char *reply, size_t reply_len, int timeout_ms);

/*
 * One request to VM NAME, for the CLI: *reply is the parsed reply when it says
 * "ok": true.  Otherwise the reason (no such VM, no answer, socket error,
 * malformed reply, the VM's own "error") is printed unless quiet, and
 * -ENOENT/-ETIMEDOUT/-EPROTO/-EIO/... returned; -EIO means the VM refused.
 */
int control_call(const char *run_dir, const char *name, const char *request_json,
		 int timeout_ms, bool quiet, struct json_object **reply);
/* The reply line of a control_request() as control_call() takes it. */
int control_parse_reply(const char *name, const char *buf, bool quiet,
			struct json_object **reply);
/* control_call() with a json-c request object, which it consumes. */
int control_call_obj(const char *run_dir, const char *name, struct json_object *req,
		     int timeout_ms, bool quiet, struct json_object **reply);

/* Many VMs at once (hdvm ps): one request to each, replies within timeout_ms. */
struct control_query {
	const char *name;
	int result;		/* 0, or -errno (-ETIMEDOUT: the VM did not answer) */
	char reply[8192];
};
void control_request_many(const char *run_dir, const char *request_json,
			  struct control_query *q, size_t n, int timeout_ms);

const char *control_run_dir(const char *opt);	/* --run-dir, $HDVM_RUN_DIR, default */
int control_valid_name(const char *name);
/* RUN_DIR/NAME.sock fits in a sockaddr_un: 0 or -ENAMETOOLONG. */
int control_socket_path(char *out, size_t len, const char *dir, const char *name);

#endif

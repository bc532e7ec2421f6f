/* SPDX-License-Identifier: MIT */
/*
 * The per-VM control socket: RUN_DIR/NAME.sock, one JSON object per line in
 * each direction.  Requests: {"cmd": "status"|"pause"|"resume"|"stop"}.
 * Replies: {"ok": true, ...} or {"ok": false, "error": "..."}.
 * RUN_DIR/NAME.lock is held (flock) for the VM's lifetime, so a second VM
 * with the same name is refused while a stale socket is taken over.
 */
#ifndef HDVM_CONTROL_H
#define HDVM_CONTROL_H

#include <stddef.h>

struct vm;
struct event_loop;

#define HDVM_DEFAULT_RUN_DIR	"/run/hdvm"
#define CONTROL_MAX_REQUEST	4096

struct control;

/* Claim the name (lock file) and bind the socket; -1 with a message on failure. */
struct control *control_open(const char *run_dir, const char *name);
int control_start(struct control *c, struct vm *vm, struct event_loop *loop);
/* Close connections, remove the socket and the lock file. */
void control_close(struct control *c);

/* Client side (hdvm ps/status/...): send one request, get the reply line. */
int control_request(const char *run_dir, const char *name, const char *request_json,
		    char *reply, size_t reply_len);
const char *control_run_dir(const char *opt);	/* --run-dir, $HDVM_RUN_DIR, default */
int control_valid_name(const char *name);

#endif

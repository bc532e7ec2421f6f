// SPDX-License-Identifier: MIT
#include "vmm/failpoint.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/util.h"

struct armed_point {
	char name[32];
	uint64_t epoch;
};

static struct armed_point armed[FAILPOINT_MAX];
static unsigned nr_armed;

int failpoint_arm(const char *name, uint64_t epoch)
{
	struct armed_point *p;

	if (nr_armed == FAILPOINT_MAX)
		return -ENOSPC;
	if (strlen(name) >= sizeof(p->name))
		return -EINVAL;
	p = &armed[nr_armed++];
	strcpy(p->name, name);
	p->epoch = epoch;
	return 0;
}

void failpoint_clear(void)
{
	nr_armed = 0;
}

static bool known_point(const char *const *known, const char *name)
{
	for (; *known; known++)
		if (!strcmp(*known, name))
			return true;
	return false;
}

int failpoint_init(const char *var, const char *const *known)
{
	const char *val = getenv(var);
	char buf[256], *save = NULL, *item;
	int err = 0;

	failpoint_clear();
	if (!val || !*val)
		return 0;
	if (strlen(val) >= sizeof(buf)) {
		pr_err("%s: too long", var);
		return -EINVAL;
	}
	strcpy(buf, val);
	for (item = strtok_r(buf, ",", &save); item && !err; item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		uint64_t epoch;

		if (!colon || parse_u64(colon + 1, 0, UINT64_MAX, &epoch)) {
			pr_err("%s: \"%s\" is not NAME:EPOCH", var, item);
			err = -EINVAL;
			break;
		}
		*colon = '\0';
		if (!known_point(known, item)) {
			pr_err("%s: no fail point \"%s\"", var, item);
			err = -EINVAL;
			break;
		}
		err = failpoint_arm(item, epoch);
		if (err)
			pr_err("%s: more than %d fail points", var, FAILPOINT_MAX);
	}
	if (err)
		failpoint_clear();
	else
		pr_info("fail points armed from %s=%s", var, val);
	return err;
}

void failpoint(const char *name, uint64_t epoch)
{
	for (unsigned i = 0; i < nr_armed; i++) {
		if (armed[i].epoch != epoch || strcmp(armed[i].name, name))
			continue;
		pr_err("fail point %s at epoch %llu: SIGKILL", name, (unsigned long long)epoch);
		raise(SIGKILL);	/* tgkill: allowed by every seccomp role */
		_exit(137);	/* not reached */
	}
}

// SPDX-License-Identifier: GPL-2.0
/*
 * machine_notify: raises, in the guest, the inotify and fanotify events of changes made to a
 * shared folder on the host side. virtiofs and 9p tell the guest kernel nothing of those, so a
 * watcher in a container (nodemon, webpack, inotifywait) would hear nothing. machine's host
 * agent watches the shares and sends each change; the guest writes one line per change here:
 *
 *   /proc/machine-notify:  OP COOKIE PATH\n
 *
 * OP is create, delete, modify, attrib, closewrite, movedfrom or movedto, with "dir" appended
 * for a directory (createdir, ...); COOKIE ties a movedfrom to its movedto (0 otherwise); PATH
 * is the guest's absolute path. Each event goes to the watchers of the parent directory (with
 * the name) and, where the guest knows the inode, to the inode's own watchers, as the kernel
 * does for a change made in the guest. The guest's cached entry for the name is dropped first,
 * so a watcher that looks after the event sees the host's folder as it is now.
 *
 * A change made in the guest reaches the host too, and the host agent, which cannot tell it from
 * the user's own, sends it back: the guest's watchers heard it already. So `watch 0 PATH` (the
 * boot writes one per read-write share) puts a mark on the share's filesystem that records the
 * guest's own changes, and a line naming one of them within ten seconds is dropped (is_echo).
 *
 * Only the guest itself may write: a process in another pid namespace (a container) is refused.
 */
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/fsnotify.h>
#include <linux/namei.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/pid_namespace.h>
#include <linux/delay.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("raise fsnotify events for host-side changes to shared folders");

#define LINE_MAX_BYTES (PATH_MAX + 64)

struct writer {
	size_t length;
	char line[LINE_MAX_BYTES];
};

static atomic_long_t raised = ATOMIC_LONG_INIT(0);
static atomic_long_t skipped = ATOMIC_LONG_INIT(0);
static atomic_long_t echoes = ATOMIC_LONG_INIT(0);

/* The kinds of change a line can name, as the guest's own changes are recorded. */
#define KINDS (FS_CREATE | FS_DELETE | FS_MODIFY | FS_ATTRIB | FS_CLOSE_WRITE | FS_MOVED_FROM | FS_MOVED_TO)
#define RECENT_SIZE 512
#define ECHO_WINDOW (10 * HZ)

/* The guest's own recent changes on marked filesystems: a ring, newest overwriting oldest. */
static struct recent {
	struct inode *dir;
	u32 hash;
	u32 kinds;
	unsigned long when;
	/* Kinds a host line already matched, and when the first did. */
	u32 answered;
	unsigned long answered_when;
} recent[RECENT_SIZE];
static unsigned int recent_next;
static DEFINE_SPINLOCK(recent_lock);

/* One line at a time raises events; the recorder ignores what that task raises. */
static DEFINE_MUTEX(raise_lock);
static struct task_struct *raising;
static struct fsnotify_group *own_changes;

static int record_change(struct fsnotify_group *group, u32 mask, const void *data, int data_type,
			 struct inode *dir, const struct qstr *name, u32 cookie,
			 struct fsnotify_iter_info *iter_info)
{
	struct recent *entry;

	if (READ_ONCE(raising) == current || !dir || !name || !(mask & KINDS))
		return 0;
	spin_lock(&recent_lock);
	entry = &recent[recent_next++ % RECENT_SIZE];
	entry->dir = dir;
	entry->hash = full_name_hash(NULL, name->name, name->len);
	entry->kinds = mask & KINDS;
	entry->when = jiffies;
	entry->answered = 0;
	spin_unlock(&recent_lock);
	return 0;
}

/*
 * Whether the guest made this change itself a moment ago. A record answers each kind once, and
 * then the same kind again for a second more: one change in the guest can reach the host as two
 * (virtiofsd's flush closes a copy of the file, then its release closes the file: two
 * close-writes), and inotify merges them only when the agent has not yet read the first. A host
 * edit of the same file after that second is the user's, and raised.
 */
#define REPEAT_WINDOW HZ
static bool is_echo(struct inode *dir, const char *name, u32 kind)
{
	u32 hash = full_name_hash(NULL, name, strlen(name));
	bool found = false;
	size_t i;

	spin_lock(&recent_lock);
	for (i = 0; i < RECENT_SIZE && !found; i++) {
		struct recent *entry = &recent[i];

		if (entry->dir != dir || entry->hash != hash || !(entry->kinds & kind) ||
		    !time_before(jiffies, entry->when + ECHO_WINDOW))
			continue;
		if (!(entry->answered & kind)) {
			if (!entry->answered)
				entry->answered_when = jiffies;
			entry->answered |= kind;
			found = true;
		} else if (time_before(jiffies, entry->answered_when + REPEAT_WINDOW)) {
			found = true;
		}
	}
	spin_unlock(&recent_lock);
	return found;
}

static void free_mark(struct fsnotify_mark *mark)
{
	kfree(mark);
}

static const struct fsnotify_ops own_change_ops = {
	.handle_event = record_change,
	.free_mark = free_mark,
};

/* `watch 0 PATH`: record the guest's own changes on PATH's filesystem (once per filesystem). */
static int watch_filesystem(const char *path_text)
{
	struct path path;
	struct super_block *sb;
	struct fsnotify_mark *mark;
	int err;

	err = kern_path(path_text, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &path);
	if (err)
		return err;
	sb = path.dentry->d_sb;
	mark = fsnotify_find_mark(&sb->s_fsnotify_marks, own_changes);
	if (mark) {
		fsnotify_put_mark(mark);
		err = 0;
		goto out;
	}
	mark = kzalloc(sizeof(*mark), GFP_KERNEL);
	err = -ENOMEM;
	if (!mark)
		goto out;
	fsnotify_init_mark(mark, own_changes);
	/* FS_EVENT_ON_CHILD: changes to files come with their folder and name. */
	mark->mask = KINDS | FS_EVENT_ON_CHILD;
	err = fsnotify_add_mark(mark, &sb->s_fsnotify_marks, FSNOTIFY_OBJ_TYPE_SB, 0, NULL);
	fsnotify_put_mark(mark);
out:
	path_put(&path);
	return err;
}

static const struct {
	const char *name;
	__u32 mask;
} operations[] = {
	{ "create", FS_CREATE }, { "delete", FS_DELETE }, { "modify", FS_MODIFY },
	{ "attrib", FS_ATTRIB }, { "closewrite", FS_CLOSE_WRITE },
	{ "movedfrom", FS_MOVED_FROM }, { "movedto", FS_MOVED_TO },
};

static int parse_operation(const char *word, __u32 *mask)
{
	size_t i, length;

	for (i = 0; i < ARRAY_SIZE(operations); i++) {
		length = strlen(operations[i].name);
		if (strncmp(word, operations[i].name, length) != 0)
			continue;
		if (word[length] == '\0') {
			*mask = operations[i].mask;
			return 0;
		}
		if (strcmp(word + length, "dir") == 0) {
			*mask = operations[i].mask | FS_ISDIR;
			return 0;
		}
	}
	return -EINVAL;
}

/* One line: resolve the parent, drop the stale entry, raise the event. */
static int raise_event(char *line)
{
	char *op = strsep(&line, " ");
	char *cookie_text = strsep(&line, " ");
	char *path = line, *slash, *name;
	struct path parent;
	struct dentry *child;
	struct inode *dir;
	struct qstr qname;
	__u32 mask, kind;
	u32 cookie;
	int err;

	if (!op || !cookie_text || !path || path[0] != '/')
		return -EINVAL;
	if (strcmp(op, "watch") == 0)
		return watch_filesystem(path);
	if (parse_operation(op, &mask) || kstrtou32(cookie_text, 10, &cookie))
		return -EINVAL;
	slash = strrchr(path, '/');
	name = slash + 1;
	if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	*slash = '\0';
	err = kern_path(slash == path ? "/" : path, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &parent);
	*slash = '/';
	if (err)
		return err;
	dir = d_inode(parent.dentry);
	qname = (struct qstr)QSTR_INIT(name, strlen(name));
	kind = mask & ~FS_ISDIR;
	if (is_echo(dir, name, kind)) {
		atomic_long_inc(&echoes);
		err = 0;
		goto out;
	}

	child = lookup_one_len_unlocked(name, parent.dentry, qname.len);
	if (IS_ERR(child)) {
		err = PTR_ERR(child);
		goto out;
	}
	/* The host changed the folder behind the guest's caches: forget what they say of the
	 * name (a negative entry for a new file, a positive one for a removed one) and look again.
	 * Never for a mount point (a share inside a share): dropping it would unmount it. */
	if ((kind & (FS_CREATE | FS_MOVED_TO | FS_DELETE | FS_MOVED_FROM)) && !d_mountpoint(child)) {
		d_invalidate(child);
		dput(child);
		child = lookup_one_len_unlocked(name, parent.dentry, qname.len);
		if (IS_ERR(child)) {
			err = PTR_ERR(child);
			goto out;
		}
	}
	WRITE_ONCE(raising, current);
	if (kind & (FS_MODIFY | FS_ATTRIB | FS_CLOSE_WRITE)) {
		/* Events on a file: to its parent's watchers with the name, and to its own. A file
		 * the host has renamed or removed since the change has no inode here to raise them
		 * on (fsnotify reports a non-dirent event on a folder without the name): the rename
		 * or delete that follows tells the watchers. */
		if (d_really_is_negative(child)) {
			err = -ENOENT;
		} else {
			fsnotify_parent(child, mask & ~FS_ISDIR, d_inode(child), FSNOTIFY_EVENT_INODE);
			err = 0;
		}
	} else {
		/* Events on a name in a directory: to the directory's watchers. */
		fsnotify_name(mask, d_really_is_positive(child) ? d_inode(child) : dir,
			      FSNOTIFY_EVENT_INODE, dir, &qname, cookie);
		err = 0;
	}
	WRITE_ONCE(raising, NULL);
	dput(child);
out:
	path_put(&parent);
	return err;
}

/*
 * The host can hear a change the guest makes before the guest raises its own event for it: the
 * guest's event comes only when the request returns (virtio-fs completes requests in a worker),
 * and under TCG that can be later than the host's line arrives. So each write waits this long
 * before its lines are looked at: the guest's records are in by then. One wait per write, so a
 * burst of lines waits once; a watcher hears host edits this much later.
 */
static unsigned int hold_ms = 30;
module_param(hold_ms, uint, 0644);
MODULE_PARM_DESC(hold_ms, "how long host lines wait for the guest's own changes to be recorded");

static int notify_open(struct inode *inode, struct file *file)
{
	struct writer *writer;

	if (task_active_pid_ns(current) != &init_pid_ns)
		return -EPERM;
	writer = kzalloc(sizeof(*writer), GFP_KERNEL);
	if (!writer)
		return -ENOMEM;
	file->private_data = writer;
	return 0;
}

static ssize_t notify_write(struct file *file, const char __user *buffer, size_t count, loff_t *position)
{
	struct writer *writer = file->private_data;
	size_t done = 0;
	char c;

	if (count && READ_ONCE(hold_ms))
		msleep(READ_ONCE(hold_ms));
	/* Lines may arrive split across writes: keep the unfinished one for the next. */
	while (done < count) {
		if (get_user(c, buffer + done))
			return done ? done : -EFAULT;
		done++;
		if (c != '\n') {
			if (writer->length < LINE_MAX_BYTES - 1)
				writer->line[writer->length++] = c;
			else
				writer->length = LINE_MAX_BYTES;  /* too long: dropped at its end */
			continue;
		}
		if (writer->length < LINE_MAX_BYTES) {
			int err;

			writer->line[writer->length] = '\0';
			mutex_lock(&raise_lock);
			err = raise_event(writer->line);
			mutex_unlock(&raise_lock);
			if (err == 0)
				atomic_long_inc(&raised);
			else
				atomic_long_inc(&skipped);
		} else {
			atomic_long_inc(&skipped);
		}
		writer->length = 0;
	}
	return done;
}

static int notify_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	return 0;
}

static ssize_t notify_read(struct file *file, char __user *buffer, size_t count, loff_t *position)
{
	char text[64];
	int length = scnprintf(text, sizeof(text), "raised %ld skipped %ld echoes %ld\n",
			       atomic_long_read(&raised), atomic_long_read(&skipped), atomic_long_read(&echoes));

	return simple_read_from_buffer(buffer, count, position, text, length);
}

static const struct proc_ops notify_ops = {
	.proc_open = notify_open,
	.proc_read = notify_read,
	.proc_write = notify_write,
	.proc_release = notify_release,
	.proc_lseek = default_llseek,
};

/* No exit: the marks on the shares' filesystems live as long as the filesystems, so the module
 * stays (the kernel refuses to unload a module without one). */
static int __init machine_notify_init(void)
{
	own_changes = fsnotify_alloc_group(&own_change_ops, 0);
	if (IS_ERR(own_changes))
		return PTR_ERR(own_changes);
	if (!proc_create("machine-notify", 0600, NULL, &notify_ops)) {
		fsnotify_put_group(own_changes);
		return -ENOMEM;
	}
	return 0;
}

module_init(machine_notify_init);

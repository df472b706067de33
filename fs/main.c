/*
 * main.c — the fapiaofs command: options, configuration, mount, loop.
 *
 *   fapiaofs [-f] [-o opt,...] [--config FILE] [--state DIR] MOUNTPOINT
 *   fapiaofs CONFIG MOUNTPOINT -o opts      (the form mount.fuse3 uses for
 *                                            fstab: fapiaofs#CONFIG MOUNTPOINT)
 *
 * The store and the device are opened once before daemonising, so that a
 * bad configuration is reported on the terminal, and opened again in the
 * daemon: SQLite connections and threads must not cross fork().
 */
#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "engine/clock.h"
#include "engine/readahead.h"
#include "fs/afterglow.h"
#include "fs/fs.h"
#include "fs/notify.h"
#include "fs/pending.h"
#include "fs/render.h"

#define FAPIAOFS_VERSION "0.1.0"

extern const struct fuse_lowlevel_ops fapiaofs_ops;

struct cli {
    char *config;
    char *state;
    char *nonopt[2];
    int nnonopt;
    int show_help, show_version;
};

static const struct fuse_opt cli_opts[] = {
    { "--config=%s", offsetof(struct cli, config), 0 },
    { "--config %s", offsetof(struct cli, config), 0 },
    { "--state=%s", offsetof(struct cli, state), 0 },
    { "--state %s", offsetof(struct cli, state), 0 },
    { "-h", offsetof(struct cli, show_help), 1 },
    { "--help", offsetof(struct cli, show_help), 1 },
    { "-V", offsetof(struct cli, show_version), 1 },
    { "--version", offsetof(struct cli, show_version), 1 },
    FUSE_OPT_END
};

static int cli_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct cli *c = data;
    (void)outargs;
    if (key == FUSE_OPT_KEY_NONOPT) {
        if (c->nnonopt == 2) {
            fprintf(stderr, "fapiaofs: too many arguments: %s\n", arg);
            return -1;
        }
        c->nonopt[c->nnonopt++] = strdup(arg);
        return 0;
    }
    return 1;
}

static void usage(const char *prog)
{
    printf("usage: %s [options] [--config FILE] MOUNTPOINT\n"
           "       %s CONFIG MOUNTPOINT [-o options]   (fstab: fapiaofs#CONFIG)\n"
           "\n"
           "fapiaofs issues VAT e-invoices (发票) from JSON drafts dropped into\n"
           "MOUNTPOINT/pending/; see MOUNTPOINT/README once mounted.\n"
           "\n"
           "fapiaofs options:\n"
           "    --config FILE          configuration (INI); without one, the embedded\n"
           "                           default: store and simulated device under ./var,\n"
           "                           platform simulator at " CONFIG_DEFAULT_PLATFORM_URL "\n"
           "    --state DIR            state directory for the embedded default (./var)\n"
           "    -h, --help             this text, then the FUSE options\n"
           "    -V, --version          version\n"
           "\n"
           "configuration keys (SPEC §2.4):\n"
           "    [store]    path, state_dir\n"
           "    [device]   kind=sim|usb, state, vid, pid, pin_file (mode 0600)\n"
           "    [platform] url, app_key, app_secret_file (mode 0600), ca_file, timeout_ms\n"
           "    [fs]       group, allow_other\n"
           "    [invoice]  drawer (default 开票人), line_tolerance (0.01 to 0.06)\n"
           "    [clock]    file (tests only)\n"
           "\n",
           prog, prog);
    fuse_cmdline_help();
    fuse_lowlevel_help();
}

static int load_config(struct cli *c, struct config *cfg)
{
    char why[512];
    if (config_load(c->config, cfg, why, sizeof why)) {
        fprintf(stderr, "fapiaofs: %s\n", why);
        return -1;
    }
    if (c->state) {
        char *abs = realpath(c->state, NULL);
        if (!abs && mkdir(c->state, 0700) == 0)
            abs = realpath(c->state, NULL);
        if (!abs) {
            fprintf(stderr, "fapiaofs: state directory %s: %s\n", c->state, strerror(errno));
            return -1;
        }
        if (!c->config) {   /* the embedded default, moved */
            snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s", abs);
            snprintf(cfg->store_path, sizeof cfg->store_path, "%s/fapiaofs.db", abs);
            snprintf(cfg->device_state, sizeof cfg->device_state, "%s/device.json", abs);
        }
        free(abs);
    }
    if (mkdir(cfg->state_dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "fapiaofs: state directory %s: %s\n", cfg->state_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static void stable_times(struct engine *e)
{
    struct store_times t = { 0 };
    store_last_times(engine_store(e), &t);
    g_fs.created_at = t.created ? t.created : g_fs.mounted_at;
}

static int open_engine(const struct config *cfg, enum engine_mode mode, struct engine **e)
{
    char why[512] = "";
    enum fa_err err = engine_open(cfg, mode, e, why, sizeof why);
    if (err) {
        fprintf(stderr, "fapiaofs: %s\n", why[0] ? why : fa_err_str(err));
        return -1;
    }
    return 0;
}

int main(int argc, char *argv[])
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct fuse_cmdline_opts opts = { 0 };
    struct fuse_session *se = NULL;
    struct cli c = { 0 };
    struct config cfg;
    struct engine *e = NULL;
    int rc = 1, i;

    pending_setup_malloc();
    if (fuse_opt_parse(&args, &c, cli_opts, cli_proc))
        goto out;
    if (c.show_help) {
        usage(argv[0]);
        rc = 0;
        goto out;
    }
    if (c.show_version) {
        printf("fapiaofs %s (libfuse %s)\n", FAPIAOFS_VERSION, fuse_pkgversion());
        rc = 0;
        goto out;
    }
    if (c.nnonopt == 2) {   /* mount.fuse3 form: the source is the configuration */
        char *hash = strchr(c.nonopt[0], '#');   /* fstab: fapiaofs#CONFIG */
        if (hash)
            memmove(c.nonopt[0], hash + 1, strlen(hash));
        free(c.config);
        c.config = c.nonopt[0];
        c.nonopt[0] = c.nonopt[1];
        c.nonopt[1] = NULL;
        c.nnonopt = 1;
    }
    if (c.nnonopt != 1) {
        fprintf(stderr, "fapiaofs: no mountpoint given (try --help)\n");
        goto out;
    }
    fuse_opt_add_arg(&args, c.nonopt[0]);
    if (fuse_parse_cmdline(&args, &opts))
        goto out;
    if (load_config(&c, &cfg))
        goto out;
    if (cfg.allow_other)
        fuse_opt_add_arg(&args, "-oallow_other");
    /* the kernel checks mode bits: who may drop drafts, who may clear */
    fuse_opt_add_arg(&args, "-odefault_permissions");

    g_fs.uid = getuid();
    g_fs.gid = getgid();
    if (cfg.fs_group[0]) {
        struct group *g = getgrnam(cfg.fs_group);
        if (!g) {
            fprintf(stderr, "fapiaofs: [fs] group %s does not exist\n", cfg.fs_group);
            goto out;
        }
        g_fs.gid = g->gr_gid;
    }

    /* preflight: report configuration, store and device problems here */
    if (open_engine(&cfg, ENGINE_CHECK, &e))
        goto out;
    engine_close(e);
    e = NULL;

    se = fuse_session_new(&args, &fapiaofs_ops, sizeof fapiaofs_ops, NULL);
    if (!se)
        goto out;
    if (fuse_set_signal_handlers(se))
        goto out;
    if (fuse_session_mount(se, opts.mountpoint))
        goto out_signals;
    if (fuse_daemonize(opts.foreground))
        goto out_unmount;

    if (open_engine(&cfg, ENGINE_RUN, &e))
        goto out_unmount;
    g_fs.engine = e;
    g_fs.mounted_at = clock_now();
    stable_times(e);
    if (readahead_open(engine_config(e)->store_path, &g_fs.readahead))
        fprintf(stderr, "fapiaofs: no read-ahead for listings (cannot open %s again)\n",
                engine_config(e)->store_path);
    g_fs.afterglow = afterglow_new();   /* NULL: tools that chmod after close report an error */
    g_fs.pending = pending_new(e, g_fs.afterglow);
    notify_start(se);
    if (!g_fs.pending || pending_start(g_fs.pending)) {
        fprintf(stderr, "fapiaofs: cannot start pending/\n");
        goto out_unmount;
    }
    if (opts.singlethread) {
        rc = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(lc, opts.clone_fd);
        if (opts.max_threads > 0 && opts.max_threads <= 100000)   /* unset: libfuse's default */
            fuse_loop_cfg_set_max_threads(lc, opts.max_threads);
        if (opts.max_idle_threads <= 100000)   /* UINT_MAX: not given, and libfuse complains */
            fuse_loop_cfg_set_idle_threads(lc, opts.max_idle_threads);
        rc = fuse_session_loop_mt(se, lc);
        fuse_loop_cfg_destroy(lc);
    }
    /* libfuse returns the signal number after SIGTERM, SIGINT or SIGHUP:
     * that is a requested stop, not a failure (-errno is one) */
    rc = rc < 0 ? 1 : 0;
out_unmount:
    ll_release_all();
    pending_free(g_fs.pending);   /* its retry thread may still send notifications */
    g_fs.pending = NULL;
    notify_stop();
    readahead_close(g_fs.readahead);   /* before the store: its connections are readers of it */
    g_fs.readahead = NULL;
    fuse_session_unmount(se);
out_signals:
    fuse_remove_signal_handlers(se);
out:
    if (se)
        fuse_session_destroy(se);
    pending_free(g_fs.pending);
    afterglow_free(g_fs.afterglow);
    engine_close(e);
    render_cleanup();
    free(opts.mountpoint);
    fuse_opt_free_args(&args);
    free(c.config);
    free(c.state);
    for (i = 0; i < 2; i++)
        free(c.nonopt[i]);
    return rc;
}

/* The fleet's NATS side (see op_fleet_start): one nats.c connection and two
 * threads of our own. nats.c's blocking calls (publish with ack, Fetch,
 * AckSync, stream and consumer lookups) never run on an event loop: the
 * publisher thread takes purges from a queue, the consumer thread pulls the
 * stream and waits for each purge's LMDB commit before it acks. */
#include "outpost/fleet.h"
#include "outpost/log.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_BATCH 256
#define FETCH_WAIT_MS 1000 /* a fetch's long poll: also how soon a stop is seen */
#define RETRY_MS 1000      /* after a failed stream or consumer setup */
/* JetStream redelivers a purge not acked by then: after a kill -9 the node
 * waits that long for what it had fetched (a purge that takes longer to
 * apply is delivered again and then skipped as applied) */
#define ACK_WAIT_S 10
#define STORE_WAIT_MS 60000  /* the most one purge's commit may take */
#define RESUBSCRIBE_AFTER 30 /* failed fetches in a row (100 ms apart) while connected */
#define CHECK_STREAM_MS 5000 /* while idle, is the stream still the one we read? */

struct pub_req {
    struct pub_req *next;
    struct op_buf record; /* the encoded purge */
    struct op_mailbox *reply;
    struct op_fleet_published *done;
    uint64_t deadline_ms; /* queued at, plus publish_timeout: the whole answer's */
};

struct op_fleet {
    /* what the config said, copied */
    char *urls[OP_CONF_MAX_LISTEN];
    int nurls;
    char node[65];
    char stream[65];
    char subject[96];
    char durable[80];
    int64_t replicas;
    int64_t publish_timeout_ms;
    struct op_store *store; /* borrowed */
    uint64_t epoch;         /* the stream's creation time (consumer thread) */

    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;

    pthread_t pub_thread, sub_thread;
    bool pub_started, sub_started;
    pthread_mutex_t lock; /* the queue, stop, last_error */
    pthread_cond_t cond;
    struct pub_req *head, *tail;
    size_t queued;
    bool stop;
    char last_error[160];

    /* the consumer waits here for the store's answer */
    pthread_mutex_t wait_lock;
    pthread_cond_t wait_cond;
    bool store_done;
    struct op_mailbox store_reply;
    struct op_purge_done purge_done;

    atomic_bool connected, caught_up;
    atomic_bool resync; /* reconnected: the stream and consumer may be new */
    atomic_uint_fast64_t applied, duplicates, invalid, published, publish_failures, last_seq,
        reconnects;
};

/* nats.c's own words for the last failure on this thread, or <s>'s name */
static const char *nats_why(natsStatus s)
{
    const char *t = nats_GetLastError(NULL);
    return t != NULL && t[0] != '\0' ? t : natsStatus_GetText(s);
}

/* "<what>: <detail>" as the last error, cut to fit */
static void set_error(struct op_fleet *f, const char *what, const char *detail)
{
    pthread_mutex_lock(&f->lock);
    snprintf(f->last_error, sizeof(f->last_error), "%.40s: %.110s", what, detail);
    pthread_mutex_unlock(&f->lock);
}

static bool stopping(struct op_fleet *f)
{
    pthread_mutex_lock(&f->lock);
    bool s = f->stop;
    pthread_mutex_unlock(&f->lock);
    return s;
}

/* Sleep <ms>, or less when asked to stop. */
static void nap(struct op_fleet *f, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    while (!f->stop && pthread_cond_timedwait(&f->cond, &f->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&f->lock);
}

/* ---- connection state, from nats.c's threads ---- */

static void on_connected(natsConnection *nc, void *arg)
{
    (void)nc;
    struct op_fleet *f = arg;
    atomic_store(&f->connected, true);
    op_log_info("fleet", "connected to NATS");
}

static void on_disconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    struct op_fleet *f = arg;
    if (atomic_exchange(&f->connected, false) && !stopping(f))
        op_log_warn("fleet", "lost NATS: purges cannot be published until it is back");
}

static void on_reconnected(natsConnection *nc, void *arg)
{
    (void)nc;
    struct op_fleet *f = arg;
    atomic_fetch_add(&f->reconnects, 1);
    atomic_store(&f->resync, true);
    atomic_store(&f->connected, true);
    op_log_info("fleet", "reconnected to NATS");
}

/* ---- the consumer ---- */

static void store_wake(void *arg)
{
    struct op_fleet *f = arg; /* called under the mailbox lock */
    pthread_mutex_lock(&f->wait_lock);
    f->store_done = true;
    pthread_cond_signal(&f->wait_cond);
    pthread_mutex_unlock(&f->wait_lock);
}

static void store_answered(struct op_msg *m)
{
    (void)m; /* the answer is in f->purge_done */
}

/* Apply purge <p>, stream sequence <seq>, and wait for its commit. 0, or the
 * store's error (the purge is then delivered again). */
static int apply(struct op_fleet *f, const struct op_fleet_purge *p, uint64_t seq, bool *dup)
{
    pthread_mutex_lock(&f->wait_lock);
    f->store_done = false;
    pthread_mutex_unlock(&f->wait_lock);
    f->purge_done.msg.run = store_answered;
    int rc = op_store_purge_fleet(f->store, f->epoch, seq, p->kind, p->soft, p->pattern.data,
                                  p->pattern.len, &f->store_reply, &f->purge_done);
    if (rc != 0)
        return rc;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STORE_WAIT_MS / 1000;
    pthread_mutex_lock(&f->wait_lock);
    int wrc = 0;
    while (!f->store_done && wrc == 0)
        wrc = pthread_cond_timedwait(&f->wait_cond, &f->wait_lock, &until);
    bool done = f->store_done;
    pthread_mutex_unlock(&f->wait_lock);
    if (!done) {
        /* the writer still owns purge_done: never reuse it (and never
         * free f) before it answers; stopping waits for it */
        op_log_error("fleet", "purge %llu: the store has not answered in %d s",
                     (unsigned long long)seq, STORE_WAIT_MS / 1000);
        pthread_mutex_lock(&f->wait_lock);
        while (!f->store_done)
            pthread_cond_wait(&f->wait_cond, &f->wait_lock);
        pthread_mutex_unlock(&f->wait_lock);
    }
    op_mailbox_drain(&f->store_reply);
    *dup = f->purge_done.dup;
    return f->purge_done.rc;
}

/* One delivered message: applied and acked, or acked as invalid, or left for
 * redelivery when the store failed. */
static void handle(struct op_fleet *f, natsMsg *msg, uint64_t *pending)
{
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        atomic_fetch_add(&f->invalid, 1);
        op_log_warn("fleet", "a message without JetStream metadata on %s: dropped", f->subject);
        natsMsg_Ack(msg, NULL);
        return;
    }
    uint64_t seq = meta->Sequence.Stream;
    *pending = meta->NumPending;
    jsMsgMetaData_Destroy(meta);
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    char err[200];
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    if (op_fleet_purge_decode(data != NULL ? data : "", len > 0 ? (size_t)len : 0, &p, err,
                              sizeof(err)) != 0) {
        atomic_fetch_add(&f->invalid, 1);
        op_log_warn("fleet", "stream sequence %llu is not a purge (%s): acked, not applied",
                    (unsigned long long)seq, err);
        natsMsg_AckSync(msg, NULL, NULL);
        op_fleet_purge_fini(&p);
        return;
    }
    bool dup = false;
    int rc = apply(f, &p, seq, &dup);
    op_fleet_purge_fini(&p);
    if (rc != 0) {
        op_log_error("fleet",
                     "stream sequence %llu: the store failed to apply it (%s); it comes "
                     "again",
                     (unsigned long long)seq, op_err_msg(rc));
        natsMsg_NakWithDelay(msg, RETRY_MS, NULL);
        return;
    }
    atomic_fetch_add(dup ? &f->duplicates : &f->applied, 1);
    uint64_t last = atomic_load(&f->last_seq);
    while (seq > last && !atomic_compare_exchange_weak(&f->last_seq, &last, seq))
        ;
    /* acked after the commit: a purge whose ack is lost comes again and is
     * then a duplicate */
    jsErrCode jerr = 0;
    natsStatus s = natsMsg_AckSync(msg, NULL, &jerr);
    if (s != NATS_OK)
        op_log_warn("fleet", "stream sequence %llu applied, its ack failed (%s): it comes again",
                    (unsigned long long)seq, natsStatus_GetText(s));
}

/* The stream's creation time as f->epoch: a stream made again (deleted, a
 * new cluster) numbers its purges from 1 again, and they must not be taken
 * for the ones applied before. NATS_ERR when it does not carry our subject. */
static natsStatus take_stream(struct op_fleet *f, jsStreamInfo *si)
{
    bool ours = false;
    for (int i = 0; si->Config != NULL && i < si->Config->SubjectsLen; i++)
        ours |= strcmp(si->Config->Subjects[i], f->subject) == 0;
    if (!ours) {
        set_error(f, "the stream exists without the subject", f->subject);
        return NATS_ERR;
    }
    uint64_t epoch = si->Created > 0 ? (uint64_t)si->Created : 1;
    if (f->epoch != 0 && f->epoch != epoch)
        op_log_warn("fleet", "stream %s was made again: its purges are new ones", f->stream);
    f->epoch = epoch;
    return NATS_OK;
}

/* The stream, created with file storage when missing. */
static natsStatus ensure_stream(struct op_fleet *f)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, f->js, f->stream, NULL, &jerr);
    if (s == NATS_OK) {
        s = take_stream(f, si);
        jsStreamInfo_Destroy(si);
        return s;
    }
    if (s != NATS_NOT_FOUND)
        return s;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {f->subject};
    sc.Name = f->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = f->replicas;
    s = js_AddStream(&si, f->js, &sc, NULL, &jerr);
    if (s == NATS_OK) {
        op_log_info("fleet", "created stream %s (subject %s, %lld replicas)", f->stream, f->subject,
                    (long long)f->replicas);
        s = take_stream(f, si);
        jsStreamInfo_Destroy(si);
    }
    return s;
}

static natsSubscription *subscribe(struct op_fleet *f)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = f->stream;
    so.Config.Durable = f->durable;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = (int64_t)ACK_WAIT_S * 1000000000LL;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = FETCH_BATCH * 4;
    jsErrCode jerr = 0;
    natsStatus s = js_PullSubscribe(&sub, f->js, f->subject, f->durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        set_error(f, "the durable consumer", nats_why(s));
        return NULL;
    }
    op_log_info("fleet", "consuming %s as %s", f->stream, f->durable);
    return sub;
}

/* The consumer as the server sees it: 0 with *drained when nothing is
 * left to deliver and nothing delivered waits for its ack, NATS_NOT_FOUND
 * when it is gone (deleted: subscribe again), else the failure. A purge
 * delivered before a kill -9 and never acked waits on the server until
 * AckWait and comes again; until then the node has not caught up. */
static natsStatus consumer_state(struct op_fleet *f, bool *drained)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetConsumerInfo(&ci, f->js, f->stream, f->durable, NULL, &jerr);
    if (s != NATS_OK) {
        set_error(f, "the consumer's state", nats_why(s));
        return s;
    }
    *drained = ci->NumPending == 0 && ci->NumAckPending == 0;
    if (!*drained) {
        char what[96];
        snprintf(what, sizeof(what), "%llu to deliver, %lld awaiting their ack",
                 (unsigned long long)ci->NumPending, (long long)ci->NumAckPending);
        set_error(f, "catching up", what);
    }
    jsConsumerInfo_Destroy(ci);
    return NATS_OK;
}

static void mark_caught_up(struct op_fleet *f)
{
    bool drained = false;
    if (atomic_load(&f->caught_up) || !atomic_load(&f->connected) ||
        consumer_state(f, &drained) != NATS_OK || !drained)
        return;
    if (!atomic_exchange(&f->caught_up, true))
        op_log_info("fleet", "caught up with %s: serving from the store", f->stream);
    pthread_mutex_lock(&f->lock);
    f->last_error[0] = '\0';
    pthread_mutex_unlock(&f->lock);
}

static void *consumer_main(void *arg)
{
    struct op_fleet *f = arg;
    natsSubscription *sub = NULL;
    int failures = 0;
    uint64_t checked_ms = op_time_mono_ms();
    while (!stopping(f)) {
        /* after a reconnect, or when the stream is another one now (made
         * again, so with a new consumer too), subscribe again */
        if (sub != NULL && atomic_exchange(&f->resync, false)) {
            natsSubscription_Destroy(sub);
            sub = NULL;
        }
        if (sub == NULL) {
            natsStatus s = atomic_load(&f->connected) ? ensure_stream(f) : NATS_NOT_YET_CONNECTED;
            if (s != NATS_OK) {
                if (s != NATS_NOT_YET_CONNECTED)
                    set_error(f, "the stream", nats_why(s));
                nap(f, RETRY_MS);
                continue;
            }
            if ((sub = subscribe(f)) == NULL) {
                nap(f, RETRY_MS);
                continue;
            }
        }
        natsMsgList list = {0};
        /* up to a batch: nats.c takes what waits at once and, with nothing
         * waiting, long-polls, returning as soon as something came;
         * NATS_TIMEOUT: nothing came */
        natsStatus s = natsSubscription_Fetch(&list, sub, FETCH_BATCH, FETCH_WAIT_MS, NULL);
        if (s == NATS_TIMEOUT && list.Count == 0) {
            /* nothing came: whatever the stream held at start may be applied */
            mark_caught_up(f);
            if (op_time_mono_ms() - checked_ms >= CHECK_STREAM_MS) {
                /* still the stream we read, and our consumer still there? */
                checked_ms = op_time_mono_ms();
                uint64_t before = f->epoch;
                bool drained;
                if (ensure_stream(f) != NATS_OK || f->epoch != before ||
                    consumer_state(f, &drained) == NATS_NOT_FOUND) {
                    op_log_warn("fleet",
                                "the stream or the consumer %s changed: subscribing "
                                "again",
                                f->durable);
                    natsSubscription_Destroy(sub);
                    sub = NULL;
                }
            }
            continue;
        }
        if (s != NATS_OK) {
            op_log_debug("fleet", "fetch: %s", natsStatus_GetText(s));
            natsMsgList_Destroy(&list);
            /* disconnected, or a leader is being elected; connected and
             * failing for long, the stream or the consumer may be gone:
             * look them up again */
            if (atomic_load(&f->connected) && ++failures >= RESUBSCRIBE_AFTER) {
                set_error(f, "fetch", natsStatus_GetText(s));
                natsSubscription_Destroy(sub);
                sub = NULL;
                failures = 0;
            }
            nap(f, 100);
            continue;
        }
        failures = 0;
        uint64_t pending = 1;
        for (int i = 0; i < list.Count; i++)
            handle(f, list.Msgs[i], &pending);
        natsMsgList_Destroy(&list);
        if (pending == 0)
            mark_caught_up(f);
    }
    natsSubscription_Destroy(sub); /* the durable consumer stays on the server */
    return NULL;
}

/* ---- the publisher ---- */

static void publish_one(struct op_fleet *f, struct pub_req *r)
{
    struct op_fleet_published *d = r->done;
    d->seq = 0;
    d->why[0] = '\0';
    d->rc = OP_EFLEET;
    d->unknown = false;
    uint64_t now = op_time_mono_ms();
    if (!atomic_load(&f->connected)) {
        /* not even handed to nats.c: it would send it on reconnecting,
         * after this purge was reported as failed */
        snprintf(d->why, sizeof(d->why), "not connected to NATS");
    } else if (now >= r->deadline_ms) {
        snprintf(d->why, sizeof(d->why), "not sent: %lld ms passed in the queue behind others",
                 (long long)f->publish_timeout_ms);
    } else {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = (int64_t)(r->deadline_ms - now);
        po.ExpectStream = f->stream;
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        natsStatus s =
            js_Publish(&ack, f->js, f->subject, r->record.data, (int)r->record.len, &po, &jerr);
        if (s == NATS_OK) {
            d->rc = 0;
            d->seq = ack->Sequence;
            jsPubAck_Destroy(ack);
        } else if (s == NATS_TIMEOUT) {
            /* sent, and no answer: it may be stored and applied yet */
            d->unknown = true;
            snprintf(d->why, sizeof(d->why), "JetStream did not confirm it within %lld ms",
                     (long long)f->publish_timeout_ms);
        } else {
            snprintf(d->why, sizeof(d->why), "%s (JetStream error %d)", natsStatus_GetText(s),
                     (int)jerr);
        }
    }
    if (d->rc == 0) {
        atomic_fetch_add(&f->published, 1);
    } else {
        atomic_fetch_add(&f->publish_failures, 1);
        set_error(f, "publish", d->why);
        op_log_warn("fleet", "a purge was not published: %s", d->why);
    }
    op_mailbox_post(r->reply, &d->msg);
}

void op_fleet_published_why(const struct op_fleet_published *d, char *out, size_t len)
{
    if (d->unknown)
        snprintf(out, len,
                 "fleet: the purge stream did not confirm the purge (%s); it may still reach "
                 "every node: give it again to be sure",
                 d->why);
    else
        snprintf(out, len,
                 "fleet: the purge stream did not take the purge (%s); nothing was purged, here "
                 "or elsewhere",
                 d->why);
}

static void *publisher_main(void *arg)
{
    struct op_fleet *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        while (!f->stop && f->head == NULL)
            pthread_cond_wait(&f->cond, &f->lock);
        struct pub_req *r = f->stop ? NULL : f->head;
        if (r != NULL) {
            f->head = r->next;
            if (f->head == NULL)
                f->tail = NULL;
            f->queued--;
        }
        pthread_mutex_unlock(&f->lock);
        if (r == NULL)
            return NULL;
        publish_one(f, r);
        op_buf_fini(&r->record);
        free(r);
    }
}

int op_fleet_publish(struct op_fleet *f, enum op_purge_kind kind, bool soft, const char *pattern,
                     size_t len, struct op_mailbox *reply, struct op_fleet_published *done)
{
    struct pub_req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return OP_ENOMEM;
    struct op_fleet_purge p;
    op_fleet_purge_init(&p);
    p.kind = kind;
    p.soft = soft;
    snprintf(p.node, sizeof(p.node), "%s", f->node);
    op_buf_init(&r->record, OP_FLEET_RECORD_MAX);
    int rc = op_buf_append(&p.pattern, pattern, len);
    if (rc == 0)
        rc = op_fleet_purge_encode(&p, &r->record);
    op_fleet_purge_fini(&p);
    if (rc != 0) {
        op_buf_fini(&r->record);
        free(r);
        return rc;
    }
    r->reply = reply;
    r->done = done;
    r->deadline_ms = op_time_mono_ms() + (uint64_t)f->publish_timeout_ms;
    pthread_mutex_lock(&f->lock);
    if (f->queued >= OP_FLEET_QUEUE_MAX) {
        pthread_mutex_unlock(&f->lock);
        op_buf_fini(&r->record);
        free(r);
        return OP_EFULL;
    }
    if (f->tail != NULL)
        f->tail->next = r;
    else
        f->head = r;
    f->tail = r;
    f->queued++;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* ---- life ---- */

static void fleet_free(struct op_fleet *f)
{
    jsCtx_Destroy(f->js);
    natsConnection_Destroy(f->nc);
    natsOptions_Destroy(f->opts);
    /* nats.c's threads may still be running f's callbacks (a disconnect
     * reported after the close): wait for all of them before f goes. One
     * fleet per process, so closing the library is ours to do. */
    if (f->nc != NULL)
        nats_CloseAndWait(2000);
    for (int i = 0; i < f->nurls; i++)
        free(f->urls[i]);
    while (f->head != NULL) {
        /* never published: answered, so the asker frees what waits on it */
        struct pub_req *r = f->head;
        f->head = r->next;
        r->done->rc = OP_EFLEET;
        r->done->seq = 0;
        snprintf(r->done->why, sizeof(r->done->why), "the node is stopping");
        op_mailbox_post(r->reply, &r->done->msg);
        op_buf_fini(&r->record);
        free(r);
    }
    op_mailbox_fini(&f->store_reply);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->wait_lock);
    pthread_cond_destroy(&f->wait_cond);
    free(f);
}

static int configure(struct op_fleet *f, const struct op_conf *conf, char *why, size_t whylen)
{
    for (size_t i = 0; f->nurls < OP_CONF_MAX_LISTEN; i++) {
        char item[300];
        if (!op_conf_list_item(conf->fleet_nats, i, item, sizeof(item)))
            break;
        size_t n = strlen(item) + 8;
        if ((f->urls[f->nurls] = malloc(n)) == NULL)
            return OP_ENOMEM;
        snprintf(f->urls[f->nurls++], n, "nats://%s", item);
    }
    natsStatus s = natsOptions_Create(&f->opts);
    if (s == NATS_OK)
        s = natsOptions_SetServers(f->opts, (const char **)f->urls, f->nurls);
    if (s == NATS_OK)
        s = natsOptions_SetName(f->opts, f->durable);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(f->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(f->opts, 250);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(f->opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(f->opts, true, on_connected, f);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(f->opts, on_disconnected, f);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(f->opts, on_reconnected, f);
    if (s == NATS_OK && conf->fleet_creds[0] != '\0')
        s = natsOptions_SetUserCredentialsFromFiles(f->opts, conf->fleet_creds, NULL);
    if (s != NATS_OK) {
        snprintf(why, whylen, "fleet: NATS options: %s", natsStatus_GetText(s));
        return OP_EINVAL;
    }
    return 0;
}

int op_fleet_start(const struct op_conf *conf, struct op_store *store, struct op_fleet **out,
                   char *why, size_t whylen)
{
    struct op_fleet *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return OP_ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    pthread_mutex_init(&f->wait_lock, NULL);
    pthread_cond_init(&f->wait_cond, NULL);
    op_mailbox_init(&f->store_reply, store_wake, f);
    f->store = store;
    snprintf(f->node, sizeof(f->node), "%s", conf->fleet_node);
    snprintf(f->stream, sizeof(f->stream), "%s", conf->fleet_stream);
    snprintf(f->subject, sizeof(f->subject), "outpost.purge.%s", conf->fleet_stream);
    snprintf(f->durable, sizeof(f->durable), "outpost-%s", conf->fleet_node);
    f->replicas = (int64_t)conf->fleet_replicas;
    f->publish_timeout_ms = (int64_t)conf->fleet_publish_timeout_ms;
    int rc = configure(f, conf, why, whylen);
    if (rc != 0) {
        fleet_free(f);
        return rc;
    }
    /* with retry-on-failed-connect this returns at once, connected or not */
    natsStatus s = natsConnection_Connect(&f->nc, f->opts);
    if (s == NATS_OK)
        on_connected(f->nc, f);
    else if (s != NATS_NOT_YET_CONNECTED) {
        snprintf(why, whylen, "fleet: NATS: %s", natsStatus_GetText(s));
        fleet_free(f);
        return OP_EINVAL;
    } else {
        op_log_warn("fleet",
                    "no NATS server answers yet (%s): trying in the background; nothing "
                    "is served from the store until the purge stream is read",
                    conf->fleet_nats);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = f->publish_timeout_ms;
    if (natsConnection_JetStream(&f->js, f->nc, &jo) != NATS_OK) {
        snprintf(why, whylen, "fleet: out of memory");
        fleet_free(f);
        return OP_ENOMEM;
    }
    f->sub_started = pthread_create(&f->sub_thread, NULL, consumer_main, f) == 0;
    f->pub_started = f->sub_started && pthread_create(&f->pub_thread, NULL, publisher_main, f) == 0;
    if (!f->pub_started) {
        op_fleet_stop(f);
        snprintf(why, whylen, "fleet: cannot start its threads");
        return OP_ENOMEM;
    }
    *out = f;
    return 0;
}

void op_fleet_stop(struct op_fleet *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->pub_started)
        pthread_join(f->pub_thread, NULL);
    if (f->sub_started)
        pthread_join(f->sub_thread, NULL);
    if (f->nc != NULL)
        natsConnection_Close(f->nc);
    fleet_free(f);
}

bool op_fleet_caught_up(const struct op_fleet *f)
{
    return atomic_load(&((struct op_fleet *)f)->caught_up);
}

void op_fleet_stats(struct op_fleet *f, struct op_fleet_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->connected = atomic_load(&f->connected);
    st->caught_up = atomic_load(&f->caught_up);
    st->applied = atomic_load(&f->applied);
    st->duplicates = atomic_load(&f->duplicates);
    st->invalid = atomic_load(&f->invalid);
    st->published = atomic_load(&f->published);
    st->publish_failures = atomic_load(&f->publish_failures);
    st->last_seq = atomic_load(&f->last_seq);
    st->reconnects = atomic_load(&f->reconnects);
    pthread_mutex_lock(&f->lock);
    snprintf(st->last_error, sizeof(st->last_error), "%s", f->last_error);
    pthread_mutex_unlock(&f->lock);
}

/*
 * loadgen: an independent load client for the Parley relay and for mosquitto (MQTT 3.1.1).
 *
 * One thread, one epoll set, non-blocking sockets and non-blocking OpenSSL (TLS 1.3 only,
 * TLS_AES_128_GCM_SHA256 for both servers so the comparison is like for like), frames and
 * protobuf fields encoded and decoded by hand (varints; only the fields it needs). It does
 * not share a line of code with the relay or its Python client library.
 *
 * Work is described by a config file of groups; each group is one sender and its receivers:
 *
 *     G <sender-name> <dest-uid> <room-id> <topic>
 *     R <receiver-name>
 *     R <receiver-name> ...
 *
 * parley: the sender logs in as <sender-name> and sends Message{uid = dest-uid} (or, when
 * room-id is not 0, Message{room = room-id, uid = 0}); every R line is a receiving user
 * (with --devices D >= 1: D connections, devices "bench-0".."bench-<D-1>"). mqtt: the
 * sender publishes to <topic>, every R line is one subscriber of <topic>; names are client
 * ids. Every payload is 32 bytes and carries a per-group counter, so receivers check that
 * every message arrives exactly once and in order (errors are counted and reported).
 *
 * Pacing: with acknowledgements (parley v2, MQTT QoS 1) a sender keeps --window messages
 * not yet acknowledged by the server (parley: accept Ack{id}; MQTT: PUBACK) and never gets
 * more than --backlog messages ahead of its receivers; without (parley v1, QoS 0) it keeps
 * --window messages sent and not yet received by its receivers.
 *
 * Phases: set-up (connect, handshake, log in / CONNECT, SUBSCRIBE; parley v2 receivers also
 * wait for the login backlog's Sync) is not measured. Timed mode (default): --warmup
 * seconds of traffic and at least twice the first burst (every sender's first window)
 * delivered, then the CPU time of this process (getrusage) and of every --watch
 * PID (utime + stime from /proc/PID/stat) is sampled, and again once --messages more
 * copies were delivered to receivers (or --max-seconds passed). Count mode (--count N):
 * every sender sends exactly N messages and the run ends when every receiver has all of
 * them (exit status 0) or nothing arrived for 10 s (exit status 1).
 *
 * The last line of stdout is one JSON object with the figures; diagnostics go to stderr.
 *
 * About 1,100 lines: one self-contained file, so the bench builds it with a single compiler
 * call and no build system; sections: buffers and protobuf, connection I/O, parley and
 * MQTT encoding, traffic and pacing, set-up, config, main loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_SIZE 32
#define ID_BASE (1ULL << 35) /* ids in [2^35, 2^42) are 6-byte varints: constant size */
#define READ_CHUNK 65536
#define WRITE_CHUNK 65536
#define MAX_WATCH 8

enum proto { PARLEY, MQTT };
enum state { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_LOGIN, S_SYNC, S_READY };

/* parley frame types (PROTOCOL.md section 3) */
enum { T_LOGIN = 0, T_MESSAGE = 6, T_ACK = 7, T_SYNC = 8, T_ROOM = 10, T_RAW = 254, T_RESET = 255 };

typedef struct {
    unsigned char *data;
    size_t off, len, cap; /* live bytes are data[off .. len) */
} buf_t;

struct group;

typedef struct conn {
    int fd;
    SSL *ssl;
    int state;
    int is_sender;
    int epoll_mask;
    int dirty;
    int write_wait_read; /* SSL_write wanted to read first */
    struct group *group;
    char name[80];
    char device[80];
    buf_t in, out;
    /* receiver */
    uint64_t received;     /* MESSAGE copies counted */
    uint64_t expect;       /* next counter expected */
    uint64_t last_seq;     /* highest seq seen */
    uint64_t login_head;   /* parley v2: backlog up to this seq is set-up noise */
    uint64_t unacked;
    uint16_t next_pid;     /* mqtt packet ids */
} conn_t;

typedef struct group {
    conn_t *sender;
    conn_t **receivers;
    int nrecv;
    uint32_t dest_uid;
    uint32_t room;
    char topic[128];
    uint64_t sent;   /* messages sent */
    uint64_t acked;  /* accepted by the server (Ack{id} / PUBACK) */
    uint64_t copies; /* copies received by all receivers together */
    uint64_t next_id;
} group_t;

/* options */
static int o_proto = PARLEY;
static const char *o_host = "127.0.0.1";
static int o_port = 0;
static const char *o_config = NULL;
static const char *o_password = "benchmark-pw";
static int o_version = 2;
static int o_devices = 0;
static int o_window = 64;
static long o_backlog = -1;
static int o_ack_every = 64;
static int o_qos = 0;
static double o_warmup = 1.0;
static uint64_t o_messages = 100000;
static double o_max_seconds = 60.0;
static uint64_t o_count = 0;
static int o_concurrency = 100;
static double o_setup_timeout = 120.0;
static int o_plaintext = 0;
static int watch_pids[MAX_WATCH];
static int n_watch = 0;

/* state */
static SSL_CTX *ctx;
static int ep;
static group_t *groups;
static int ngroups;
static conn_t **conns;
static int nconns;
static conn_t **dirty_list;
static int ndirty;
static int setting_up;   /* connections between connect and ready */
static int next_to_start;
static int n_ready;
static uint64_t delivered; /* MESSAGE copies delivered to receivers, all groups */
static uint64_t errors;    /* out-of-order / missing / refused */
static uint64_t refused;
static struct sockaddr_storage server_addr;
static socklen_t server_addr_len;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double self_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of another process, in seconds (-1 if gone) */
static double proc_cpu(int pid) {
    char path[64], text[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *p = strrchr(text, ')');
    if (!p) return -1;
    p += 2; /* fields from 3 (state) on */
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; field <= 15 && *p; field++) {
        if (field == 14) utime = strtoull(p, NULL, 10);
        if (field == 15) stime = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
        if (!p) break;
        p++;
    }
    return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

/* ---------------------------------------------------------------- buffers, encoding */

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    if (b->off > 0 && b->len - b->off + extra <= b->cap) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len - b->off + extra) cap *= 2;
    unsigned char *data = malloc(cap);
    if (!data) die("out of memory");
    if (b->data) memcpy(data, b->data + b->off, b->len - b->off);
    free(b->data);
    b->len -= b->off;
    b->off = 0;
    b->data = data;
    b->cap = cap;
}

static size_t put_varint(unsigned char *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* a protobuf field walker: the varint value or the bytes of field `want` (last one wins) */
typedef struct {
    uint64_t v[16];
    const unsigned char *s[16];
    size_t slen[16];
    unsigned present;
} pbmsg_t;

static int pb_parse(const unsigned char *p, size_t len, pbmsg_t *m) {
    const unsigned char *end = p + len;
    m->present = 0;
    while (p < end) {
        uint64_t key = 0;
        int shift = 0;
        while (p < end) {
            unsigned char c = *p++;
            key |= (uint64_t)(c & 0x7f) << shift;
            shift += 7;
            if (!(c & 0x80)) break;
        }
        unsigned field = (unsigned)(key >> 3), wire = key & 7;
        uint64_t val = 0;
        if (wire == 0) {
            shift = 0;
            while (p < end) {
                unsigned char c = *p++;
                val |= (uint64_t)(c & 0x7f) << shift;
                shift += 7;
                if (!(c & 0x80)) break;
            }
            if (field < 16) {
                m->v[field] = val;
                m->present |= 1u << field;
            }
        } else if (wire == 2) {
            shift = 0;
            while (p < end) {
                unsigned char c = *p++;
                val |= (uint64_t)(c & 0x7f) << shift;
                shift += 7;
                if (!(c & 0x80)) break;
            }
            if (val > (uint64_t)(end - p)) return -1;
            if (field < 16) {
                m->s[field] = p;
                m->slen[field] = (size_t)val;
                m->present |= 1u << field;
            }
            p += val;
        } else if (wire == 1) {
            p += 8;
        } else if (wire == 5) {
            p += 4;
        } else {
            return -1;
        }
    }
    return p == end ? 0 : -1;
}

#define PB_HAS(m, f) (((m)->present >> (f)) & 1u)
#define PB_U(m, f) (PB_HAS(m, f) ? (m)->v[f] : 0)

/* ------------------------------------------------------------------- connection I/O */

static void set_mask(conn_t *c, int mask) {
    if (mask == c->epoll_mask) return;
    struct epoll_event ev = {.events = (uint32_t)mask, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl mod: %s", strerror(errno));
    c->epoll_mask = mask;
}

static void mark_dirty(conn_t *c) {
    if (!c->dirty) {
        c->dirty = 1;
        dirty_list[ndirty++] = c;
    }
}

static void flush(conn_t *c) {
    while (c->out.len > c->out.off) {
        size_t pending = c->out.len - c->out.off;
        int chunk = pending > WRITE_CHUNK ? WRITE_CHUNK : (int)pending;
        int n;
        if (c->ssl) {
            ERR_clear_error();
            n = SSL_write(c->ssl, c->out.data + c->out.off, chunk);
            if (n <= 0) {
                int err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_WRITE) {
                    set_mask(c, EPOLLIN | EPOLLOUT);
                    return;
                }
                if (err == SSL_ERROR_WANT_READ) {
                    c->write_wait_read = 1;
                    return;
                }
                die("%s: SSL_write failed (error %d)", c->name, err);
            }
        } else {
            n = (int)send(c->fd, c->out.data + c->out.off, (size_t)chunk, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    set_mask(c, EPOLLIN | EPOLLOUT);
                    return;
                }
                die("%s: send: %s", c->name, strerror(errno));
            }
        }
        c->out.off += (size_t)n;
    }
    c->out.off = c->out.len = 0;
    set_mask(c, EPOLLIN);
}

static void flush_dirty(void) {
    for (int i = 0; i < ndirty; i++) {
        conn_t *c = dirty_list[i];
        c->dirty = 0;
        if (c->state >= S_LOGIN) flush(c);
    }
    ndirty = 0;
}

/* ----------------------------------------------------------------- parley encoding */

static unsigned char *frame_begin(conn_t *c, size_t payload_max) {
    buf_reserve(&c->out, payload_max + 5);
    return c->out.data + c->out.len + 5;
}

static void frame_end(conn_t *c, int type, unsigned char *end) {
    unsigned char *head = c->out.data + c->out.len;
    uint32_t len = (uint32_t)(end - head - 5);
    head[0] = (unsigned char)(len >> 24);
    head[1] = (unsigned char)(len >> 16);
    head[2] = (unsigned char)(len >> 8);
    head[3] = (unsigned char)len;
    head[4] = (unsigned char)type;
    c->out.len += len + 5;
    mark_dirty(c);
}

static unsigned char *put_string(unsigned char *p, int field, const char *s) {
    size_t n = strlen(s);
    p += put_varint(p, (uint64_t)field << 3 | 2);
    p += put_varint(p, n);
    memcpy(p, s, n);
    return p + n;
}

static void send_login(conn_t *c) {
    unsigned char *start = frame_begin(c, 512);
    unsigned char *p = start;
    p = put_string(p, 1, c->name);
    p = put_string(p, 2, o_password);
    if (o_version == 2) {
        *p++ = 3 << 3;
        *p++ = 2;
    }
    if (c->device[0]) p = put_string(p, 6, c->device);
    frame_end(c, T_LOGIN, p);
}

static void send_ack_seq(conn_t *c, uint64_t seq) {
    unsigned char *p = frame_begin(c, 16);
    *p++ = 2 << 3;
    p += put_varint(p, seq);
    frame_end(c, T_ACK, p);
}

/* the counter as zero-padded decimal filling exactly `width` bytes */
static void put_counter(unsigned char *p, size_t width, uint64_t counter) {
    for (size_t i = width; i > 0; i--) {
        p[i - 1] = (unsigned char)('0' + counter % 10);
        counter /= 10;
    }
}

static uint64_t get_counter(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + (uint64_t)(p[i] - '0');
    return v;
}

static void parley_send_message(group_t *g) {
    conn_t *c = g->sender;
    unsigned char *start = frame_begin(c, PAYLOAD_SIZE + 8);
    unsigned char *p = start;
    size_t fixed = 0;
    if (!g->room) fixed += 1 + varint_len(g->dest_uid);
    else fixed += 1 + varint_len(g->room);
    if (o_version == 2) fixed += 1 + varint_len(g->next_id);
    size_t text = PAYLOAD_SIZE - fixed - 2; /* msg tag + 1-byte length */
    if (!g->room) {
        *p++ = 1 << 3;
        p += put_varint(p, g->dest_uid);
    }
    *p++ = 4 << 3 | 2;
    *p++ = (unsigned char)text;
    put_counter(p, text, g->sent);
    p += text;
    if (o_version == 2) {
        *p++ = 7 << 3;
        p += put_varint(p, g->next_id++);
    }
    if (g->room) {
        *p++ = 10 << 3;
        p += put_varint(p, g->room);
    }
    if ((size_t)(p - start) != PAYLOAD_SIZE) die("payload is %zu bytes", (size_t)(p - start));
    frame_end(c, T_MESSAGE, p);
}

/* ------------------------------------------------------------------- mqtt encoding */

static size_t put_remaining(unsigned char *p, size_t v) {
    size_t n = 0;
    do {
        unsigned char b = v % 128;
        v /= 128;
        if (v) b |= 0x80;
        p[n++] = b;
    } while (v);
    return n;
}

static unsigned char *put_mqtt_string(unsigned char *p, const char *s) {
    size_t n = strlen(s);
    *p++ = (unsigned char)(n >> 8);
    *p++ = (unsigned char)n;
    memcpy(p, s, n);
    return p + n;
}

static void mqtt_packet(conn_t *c, unsigned char first, const unsigned char *body, size_t n) {
    buf_reserve(&c->out, n + 5);
    unsigned char *p = c->out.data + c->out.len;
    *p++ = first;
    p += put_remaining(p, n);
    memcpy(p, body, n);
    c->out.len = (size_t)(p + n - c->out.data);
    mark_dirty(c);
}

static void mqtt_connect(conn_t *c) {
    unsigned char body[256], *p = body;
    p = put_mqtt_string(p, "MQTT");
    *p++ = 4;    /* 3.1.1 */
    *p++ = 0x02; /* clean session */
    *p++ = 0;    /* keepalive 0: off */
    *p++ = 0;
    p = put_mqtt_string(p, c->name);
    mqtt_packet(c, 0x10, body, (size_t)(p - body));
}

static void mqtt_subscribe(conn_t *c) {
    unsigned char body[256], *p = body;
    *p++ = 0;
    *p++ = 1; /* packet id */
    p = put_mqtt_string(p, c->group->topic);
    *p++ = (unsigned char)o_qos;
    mqtt_packet(c, 0x82, body, (size_t)(p - body));
}

static void mqtt_publish(group_t *g) {
    conn_t *c = g->sender;
    unsigned char body[256], *p = body;
    p = put_mqtt_string(p, g->topic);
    if (o_qos) {
        if (++c->next_pid == 0) c->next_pid = 1;
        *p++ = (unsigned char)(c->next_pid >> 8);
        *p++ = (unsigned char)c->next_pid;
    }
    put_counter(p, PAYLOAD_SIZE, g->sent);
    p += PAYLOAD_SIZE;
    mqtt_packet(c, (unsigned char)(0x30 | (o_qos << 1)), body, (size_t)(p - body));
}

static void mqtt_puback(conn_t *c, const unsigned char *pid) {
    mqtt_packet(c, 0x40, pid, 2);
}

/* ------------------------------------------------------------------------- traffic */

static uint64_t id_base(void);
static int traffic_on = 0;
static int acked_mode(void) { return o_proto == PARLEY ? o_version == 2 : o_qos == 1; }

static void top_up(group_t *g) {
    if (!traffic_on) return;
    uint64_t window = (uint64_t)o_window;
    uint64_t backlog = acked_mode() ? (uint64_t)o_backlog : window;
    uint64_t nrecv = (uint64_t)g->nrecv;
    while (1) {
        if (o_count && g->sent >= o_count) return;
        if (acked_mode() && g->sent - g->acked >= window) return;
        if (g->sent * nrecv - g->copies >= backlog * nrecv) return;
        if (o_proto == PARLEY) parley_send_message(g);
        else mqtt_publish(g);
        g->sent++;
    }
}

static void got_copy(conn_t *c, uint64_t counter) {
    if (counter != c->expect) {
        if (errors < 10)
            fprintf(stderr, "loadgen: %s got message %llu, expected %llu\n", c->name,
                    (unsigned long long)counter, (unsigned long long)c->expect);
        errors++;
    }
    c->expect = counter + 1;
    c->received++;
    c->group->copies++;
    delivered++;
}

static void became_ready(conn_t *c) {
    c->state = S_READY;
    setting_up--;
    n_ready++;
}

/* one parley frame; returns the number of MESSAGE copies counted */
static int parley_frame(conn_t *c, int type, const unsigned char *payload, size_t len) {
    pbmsg_t m;
    if (type == T_RAW) return 0;
    if (pb_parse(payload, len, &m) < 0) die("%s: undecodable frame type %d", c->name, type);
    if (type == T_RESET) {
        die("%s: Reset code %llu: %.*s", c->name, (unsigned long long)PB_U(&m, 1),
            (int)(PB_HAS(&m, 2) ? m.slen[2] : 0), PB_HAS(&m, 2) ? (const char *)m.s[2] : "");
    }
    if (c->state == S_LOGIN) {
        if (type != T_LOGIN) return 0;
        if (PB_U(&m, 1) != 0) die("%s: login refused, code %llu", c->name, (unsigned long long)PB_U(&m, 1));
        c->login_head = PB_U(&m, 5);
        if (c->login_head) {
            c->last_seq = c->login_head;
            send_ack_seq(c, c->login_head); /* set-up leftovers (room events): drop them */
        }
        if (o_version == 2 && !c->is_sender) c->state = S_SYNC;
        else became_ready(c);
        return 0;
    }
    if (c->state == S_SYNC && type == T_SYNC) {
        became_ready(c);
        return 0;
    }
    if (type == T_MESSAGE && !c->is_sender) {
        uint64_t seq = PB_U(&m, 8);
        if (seq && seq <= c->login_head) return 0;
        if (seq > c->last_seq) c->last_seq = seq;
        if (PB_U(&m, 3) != 0 || !PB_HAS(&m, 4)) return 0; /* room events etc. */
        got_copy(c, get_counter(m.s[4], m.slen[4]));
        if (o_version == 2 && (++c->unacked >= (uint64_t)o_ack_every ||
                               (o_count && c->received == o_count))) {
            c->unacked = 0;
            send_ack_seq(c, c->last_seq);
        }
        return 1;
    }
    if (type == T_ACK && c->is_sender) {
        if (PB_U(&m, 5)) return 0; /* delivery receipt */
        if (PB_U(&m, 3) != 0) {
            if (refused < 10)
                fprintf(stderr, "loadgen: %s: message refused, Ack code %llu\n", c->name,
                        (unsigned long long)PB_U(&m, 3));
            refused++;
            errors++;
        }
        c->group->acked++;
        return 1;
    }
    return 0;
}

static int mqtt_packet_in(conn_t *c, unsigned char first, const unsigned char *p, size_t len) {
    int kind = first >> 4;
    switch (kind) {
    case 2: /* CONNACK */
        if (len < 2 || p[1] != 0) die("%s: CONNACK refused (%d)", c->name, len >= 2 ? p[1] : -1);
        if (c->is_sender) became_ready(c);
        else mqtt_subscribe(c);
        return 0;
    case 9: /* SUBACK */
        if (len < 3 || p[2] == 0x80) die("%s: SUBACK refused", c->name);
        became_ready(c);
        return 0;
    case 4: /* PUBACK */
        c->group->acked++;
        return 1;
    case 3: { /* PUBLISH */
        int qos = (first >> 1) & 3;
        if (len < 2) die("%s: short PUBLISH", c->name);
        size_t tlen = (size_t)p[0] << 8 | p[1];
        size_t off = 2 + tlen;
        const unsigned char *pid = p + off;
        if (qos) off += 2;
        if (off > len) die("%s: bad PUBLISH", c->name);
        got_copy(c, get_counter(p + off, len - off));
        if (qos) mqtt_puback(c, pid);
        return 1;
    }
    default:
        return 0;
    }
}

/* decode every complete frame in c->in; top the sender up once afterwards */
static void process_input(conn_t *c) {
    buf_t *b = &c->in;
    int progress = 0;
    while (1) {
        size_t avail = b->len - b->off;
        unsigned char *p = b->data + b->off;
        if (o_proto == PARLEY) {
            if (avail < 5) break;
            size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
            if (avail < len + 5) break;
            progress += parley_frame(c, p[4], p + 5, len);
            b->off += len + 5;
        } else {
            if (avail < 2) break;
            size_t len = 0, mult = 1, i = 1;
            int complete = 0;
            while (i < avail && i <= 4) {
                len += (size_t)(p[i] & 0x7f) * mult;
                mult *= 128;
                if (!(p[i++] & 0x80)) {
                    complete = 1;
                    break;
                }
            }
            if (!complete || avail < i + len) break;
            progress += mqtt_packet_in(c, p[0], p + i, len);
            b->off += i + len;
        }
    }
    if (b->off == b->len) b->off = b->len = 0;
    if (progress) top_up(c->group);
}

static void read_input(conn_t *c) {
    while (1) {
        buf_reserve(&c->in, READ_CHUNK);
        int n;
        if (c->ssl) {
            ERR_clear_error();
            n = SSL_read(c->ssl, c->in.data + c->in.len, READ_CHUNK);
            if (n <= 0) {
                int err = SSL_get_error(c->ssl, n);
                if (err == SSL_ERROR_WANT_READ) break;
                if (err == SSL_ERROR_WANT_WRITE) {
                    set_mask(c, EPOLLIN | EPOLLOUT);
                    break;
                }
                process_input(c);
                die("%s: connection closed by the server (SSL error %d)", c->name, err);
            }
        } else {
            n = (int)recv(c->fd, c->in.data + c->in.len, READ_CHUNK, 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                die("%s: recv: %s", c->name, strerror(errno));
            }
            if (n == 0) {
                process_input(c);
                die("%s: connection closed by the server", c->name);
            }
        }
        c->in.len += (size_t)n;
    }
    process_input(c);
    if (c->write_wait_read || c->out.len > c->out.off) {
        c->write_wait_read = 0;
        mark_dirty(c);
    }
}

/* ---------------------------------------------------------------------- set-up */

static void start_conn(conn_t *c) {
    c->fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&server_addr, server_addr_len) < 0 && errno != EINPROGRESS)
        die("connect: %s", strerror(errno));
    c->state = S_CONNECTING;
    c->epoll_mask = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add: %s", strerror(errno));
    setting_up++;
}

static void logged_in_or_connected(conn_t *c) {
    c->state = S_LOGIN;
    set_mask(c, EPOLLIN);
    if (o_proto == PARLEY) send_login(c);
    else mqtt_connect(c);
    read_input(c); /* bytes OpenSSL may already hold would never wake epoll */
}

static void advance_handshake(conn_t *c) {
    ERR_clear_error();
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        logged_in_or_connected(c);
        return;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ) set_mask(c, EPOLLIN);
    else if (err == SSL_ERROR_WANT_WRITE) set_mask(c, EPOLLOUT);
    else die("%s: TLS handshake failed (error %d)", c->name, err);
}

static void on_event(conn_t *c, uint32_t events) {
    if (c->state == S_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
        if (soerr) die("%s: connect: %s", c->name, strerror(soerr));
        if (o_plaintext) {
            logged_in_or_connected(c);
            return;
        }
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        c->state = S_HANDSHAKE;
        advance_handshake(c);
        return;
    }
    if (c->state == S_HANDSHAKE) {
        advance_handshake(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) read_input(c);
    if (events & EPOLLOUT) mark_dirty(c);
}

/* ------------------------------------------------------------------------- config */

static conn_t *new_conn(group_t *g, const char *name, const char *device, int is_sender) {
    conn_t *c = calloc(1, sizeof *c);
    if (!c) die("out of memory");
    c->fd = -1;
    c->group = g;
    c->is_sender = is_sender;
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->device, sizeof c->device, "%s", device);
    return c;
}

static void add_conn(conn_t *c) {
    static int cap = 0;
    if (nconns == cap) {
        cap = cap ? cap * 2 : 256;
        conns = realloc(conns, (size_t)cap * sizeof *conns);
        if (!conns) die("out of memory");
    }
    conns[nconns++] = c;
}

static void read_config(void) {
    FILE *f = fopen(o_config, "r");
    if (!f) die("cannot open %s: %s", o_config, strerror(errno));
    char line[1024];
    int gcap = 0;
    group_t *g = NULL;
    while (fgets(line, sizeof line, f)) {
        char kind[4], a[256], topic[128];
        unsigned long dest, room;
        if (line[0] == 'G') {
            if (sscanf(line, "%3s %255s %lu %lu %127s", kind, a, &dest, &room, topic) != 5)
                die("bad config line: %s", line);
            if (ngroups == gcap) {
                gcap = gcap ? gcap * 2 : 64;
                groups = realloc(groups, (size_t)gcap * sizeof *groups);
                if (!groups) die("out of memory");
            }
            g = &groups[ngroups++];
            memset(g, 0, sizeof *g);
            g->dest_uid = (uint32_t)dest;
            g->room = (uint32_t)room;
            g->next_id = id_base();
            snprintf(g->topic, sizeof g->topic, "%s", topic);
            g->sender = new_conn(NULL, a, o_devices ? "bench-0" : "", 1);
        } else if (line[0] == 'R') {
            if (!g || sscanf(line, "%3s %255s", kind, a) != 2) die("bad config line: %s", line);
            int copies = o_devices > 0 ? o_devices : 1;
            g->receivers = realloc(g->receivers, (size_t)(g->nrecv + copies) * sizeof(conn_t *));
            for (int d = 0; d < copies; d++) {
                char device[32] = "";
                if (o_devices > 0) snprintf(device, sizeof device, "bench-%d", d);
                char name[300];
                snprintf(name, sizeof name, "%s", a);
                g->receivers[g->nrecv++] = new_conn(NULL, name, device, 0);
            }
        }
    }
    fclose(f);
    if (!ngroups) die("no group in %s", o_config);
    /* receivers first, so they are subscribed/logged in before any sender exists */
    for (int i = 0; i < ngroups; i++) {
        groups[i].sender->group = &groups[i];
        for (int r = 0; r < groups[i].nrecv; r++) {
            groups[i].receivers[r]->group = &groups[i];
            add_conn(groups[i].receivers[r]);
        }
        if (!groups[i].nrecv) die("group %d has no receiver", i);
    }
    for (int i = 0; i < ngroups; i++) add_conn(groups[i].sender);
}

/* ids must be unique per sender across runs (the relay deduplicates (sender, id)): start
 * from the wall clock in microseconds, far ahead of what any earlier run could have used
 * (a sender sends well under one message per microsecond); always a 6-byte varint */
static uint64_t id_base(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    return ID_BASE + us % (1ULL << 41);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --proto parley|mqtt --port P --config FILE [options]\n"
            "  --host H            server address (127.0.0.1)\n"
            "  --plaintext         no TLS\n"
            "  --password PW       parley password of every user (benchmark-pw)\n"
            "  --version 1|2       parley session version (2)\n"
            "  --devices D         parley: D receiving devices per receiver (bench-0..);\n"
            "                      senders log in as device bench-0; 0 = no device field\n"
            "  --ack-every K       parley v2 receivers send Ack{seq} every K messages (64)\n"
            "  --qos 0|1           mqtt QoS (0)\n"
            "  --window W          messages in flight per sender (64)\n"
            "  --backlog B         acked modes: max messages ahead of receivers (4*W)\n"
            "  --warmup S          seconds of traffic before measuring (1)\n"
            "  --messages N        copies to deliver while measuring (100000)\n"
            "  --max-seconds S     end the measured phase after S seconds (60)\n"
            "  --count N           instead: every sender sends exactly N; check all arrive\n"
            "  --watch PID         also report this process's CPU time (repeatable, max 8)\n"
            "  --concurrency C     connections in set-up at once (100)\n"
            "  --setup-timeout S   give up when set-up takes longer (120)\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(s) (!strcmp(a, s) && v && (++i, 1))
        if (!strcmp(a, "--plaintext")) o_plaintext = 1;
        else if (OPT("--proto")) o_proto = !strcmp(v, "mqtt") ? MQTT : !strcmp(v, "parley") ? PARLEY : (usage(), 0);
        else if (OPT("--host")) o_host = v;
        else if (OPT("--port")) o_port = atoi(v);
        else if (OPT("--config")) o_config = v;
        else if (OPT("--password")) o_password = v;
        else if (OPT("--version")) o_version = atoi(v);
        else if (OPT("--devices")) o_devices = atoi(v);
        else if (OPT("--ack-every")) o_ack_every = atoi(v);
        else if (OPT("--qos")) o_qos = atoi(v);
        else if (OPT("--window")) o_window = atoi(v);
        else if (OPT("--backlog")) o_backlog = atol(v);
        else if (OPT("--warmup")) o_warmup = atof(v);
        else if (OPT("--messages")) o_messages = strtoull(v, NULL, 10);
        else if (OPT("--max-seconds")) o_max_seconds = atof(v);
        else if (OPT("--count")) o_count = strtoull(v, NULL, 10);
        else if (OPT("--concurrency")) o_concurrency = atoi(v);
        else if (OPT("--setup-timeout")) o_setup_timeout = atof(v);
        else if (OPT("--watch")) {
            if (n_watch == MAX_WATCH) die("too many --watch");
            watch_pids[n_watch++] = atoi(v);
        } else usage();
#undef OPT
    }
    if (!o_port || !o_config || o_window < 1 || o_ack_every < 1) usage();
    if (o_version != 1 && o_version != 2) usage();
    if (o_qos != 0 && o_qos != 1) usage();
    if (o_proto == MQTT && o_window > 65535) die("--window must be <= 65535 for mqtt");
    if (o_backlog < 0) o_backlog = 4L * o_window;
    if (o_backlog < o_window) o_backlog = o_window;
}

/* ---------------------------------------------------------------------- main loop */

static struct epoll_event events[1024];

static int pump(double timeout_s) {
    int n = epoll_wait(ep, events, 1024, (int)(timeout_s * 1000));
    if (n < 0) {
        if (errno == EINTR) return 0;
        die("epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++) on_event(events[i].data.ptr, events[i].events);
    flush_dirty();
    return n;
}

static double longest_gap = 0; /* longest wait for any event in the measured phase, s */
static uint64_t warm_delivered = 0;

/* what every stuck group was doing, for a stall report */
static void dump_state(void) {
    int shown = 0;
    for (int i = 0; i < ngroups && shown < 10; i++) {
        group_t *g = &groups[i];
        if (g->sent * (uint64_t)g->nrecv == g->copies) continue;
        shown++;
        fprintf(stderr, "loadgen: group %s: sent %llu, acked %llu, copies %llu of %llu;",
                g->sender->name, (unsigned long long)g->sent, (unsigned long long)g->acked,
                (unsigned long long)g->copies, (unsigned long long)(g->sent * (uint64_t)g->nrecv));
        for (int r = 0; r < g->nrecv && r < 4; r++)
            fprintf(stderr, " %s/%s got %llu (last seq %llu, out %zu)", g->receivers[r]->name,
                    g->receivers[r]->device, (unsigned long long)g->receivers[r]->received,
                    (unsigned long long)g->receivers[r]->last_seq,
                    g->receivers[r]->out.len - g->receivers[r]->out.off);
        fprintf(stderr, "\n");
    }
}

static void json_cpu(const char *key, double *values) {
    printf(", \"%s\": [", key);
    for (int i = 0; i < n_watch; i++) printf("%s%.4f", i ? ", " : "", values[i]);
    printf("]");
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    read_config();
    dirty_list = calloc((size_t)nconns, sizeof *dirty_list);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    char port[16];
    snprintf(port, sizeof port, "%d", o_port);
    if (getaddrinfo(o_host, port, &hints, &res) != 0) die("cannot resolve %s", o_host);
    memcpy(&server_addr, res->ai_addr, res->ai_addrlen);
    server_addr_len = res->ai_addrlen;
    freeaddrinfo(res);

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) die("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* loopback bench; tests cover pinning */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_read_ahead(ctx, 1); /* one recv() for many small records, not two each */

    ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1: %s", strerror(errno));

    /* set-up: receivers first, then senders, at most --concurrency at once */
    double setup_start = now();
    while (n_ready < nconns) {
        while (next_to_start < nconns && setting_up < o_concurrency) start_conn(conns[next_to_start++]);
        pump(0.2);
        if (now() - setup_start > o_setup_timeout)
            die("set-up timed out: %d of %d connections ready", n_ready, nconns);
    }
    double setup_seconds = now() - setup_start;

    /* traffic */
    traffic_on = 1;
    for (int i = 0; i < ngroups; i++) top_up(&groups[i]);
    flush_dirty();

    double watch0[MAX_WATCH], watch1[MAX_WATCH];
    uint64_t measured = 0, sent0 = 0, sent1 = 0;
    double wall = 0, cpu = 0;
    int ok = 1;
    uint64_t expected = 0;
    if (o_count) {
        for (int i = 0; i < ngroups; i++) expected += o_count * (uint64_t)groups[i].nrecv;
        for (int i = 0; i < n_watch; i++) watch0[i] = proc_cpu(watch_pids[i]);
        double cpu0 = self_cpu(), t0 = now(), last_progress = t0;
        uint64_t seen = delivered;
        while (delivered < expected) {
            pump(1.0);
            if (delivered != seen) {
                seen = delivered;
                last_progress = now();
            } else if (now() - last_progress > 10.0) {
                fprintf(stderr, "loadgen: nothing arrived for 10 s; %llu of %llu copies\n",
                        (unsigned long long)delivered, (unsigned long long)expected);
                ok = 0;
                break;
            }
        }
        /* the senders' last accept acks, so the figure counts them too */
        double t_acks = now();
        while (acked_mode() && now() - t_acks < 10.0) {
            int all = 1;
            for (int i = 0; i < ngroups; i++) all &= groups[i].acked >= groups[i].sent;
            if (all) break;
            pump(0.5);
        }
        for (int i = 0; i < n_watch; i++) watch1[i] = proc_cpu(watch_pids[i]);
        measured = delivered;
        wall = now() - t0;
        cpu = self_cpu() - cpu0;
        for (int i = 0; i < ngroups; i++) {
            sent1 += groups[i].sent;
            if (acked_mode() && groups[i].acked != groups[i].sent) ok = 0;
            for (int r = 0; r < groups[i].nrecv; r++)
                if (groups[i].receivers[r]->received != o_count) ok = 0;
        }
    } else {
        /* the first window of every sender is a burst, not the steady state: warm up for
         * --warmup seconds and at least until twice that burst has been delivered */
        uint64_t burst = 0;
        for (int i = 0; i < ngroups; i++) burst += (uint64_t)o_window * (uint64_t)groups[i].nrecv;
        double end_warm = now() + o_warmup;
        double last_event = now();
        while (now() < end_warm || delivered < 2 * burst) {
            if (pump(1.0)) last_event = now();
            else if (now() - last_event > 10.0) {
                dump_state();
                die("no traffic for 10 s during warm-up: the server stalled");
            }
        }
        for (int i = 0; i < n_watch; i++) watch0[i] = proc_cpu(watch_pids[i]);
        for (int i = 0; i < ngroups; i++) sent0 += groups[i].sent;
        double cpu0 = self_cpu(), t0 = now();
        uint64_t start = delivered;
        warm_delivered = delivered;
        last_event = t0;
        while (delivered - start < o_messages && now() - t0 < o_max_seconds) {
            if (pump(1.0)) {
                double t = now();
                if (t - last_event > longest_gap) longest_gap = t - last_event;
                last_event = t;
            } else if (now() - last_event > 10.0) {
                dump_state();
                die("no traffic for 10 s: the server stalled");
            }
        }
        for (int i = 0; i < n_watch; i++) watch1[i] = proc_cpu(watch_pids[i]);
        wall = now() - t0;
        cpu = self_cpu() - cpu0;
        measured = delivered - start;
        for (int i = 0; i < ngroups; i++) sent1 += groups[i].sent;
        sent1 -= sent0;
    }
    if (errors) ok = 0;

    double watch_delta[MAX_WATCH];
    for (int i = 0; i < n_watch; i++) watch_delta[i] = watch1[i] - watch0[i];
    printf("{\"proto\": \"%s\", \"connections\": %d, \"groups\": %d, \"setup_seconds\": %.3f, "
           "\"delivered\": %llu, \"sent\": %llu, \"seconds\": %.4f, \"loadgen_cpu\": %.4f, "
           "\"errors\": %llu, \"refused\": %llu, \"expected\": %llu, \"ok\": %s",
           o_proto == PARLEY ? "parley" : "mqtt", nconns, ngroups, setup_seconds,
           (unsigned long long)measured, (unsigned long long)sent1, wall, cpu,
           (unsigned long long)errors, (unsigned long long)refused, (unsigned long long)expected,
           ok ? "true" : "false");
    printf(", \"longest_gap\": %.3f, \"warmup_delivered\": %llu", longest_gap,
           (unsigned long long)warm_delivered);
    json_cpu("watch_cpu", watch_delta);
    printf("}\n");
    fflush(stdout);
    return ok ? 0 : 1;
}

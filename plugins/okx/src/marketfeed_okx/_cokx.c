/* Optional C fast path of the OKX normaliser (marketfeed_okx._cokx).
 *
 * Fast(...)(frame, receive_time) reads one OKX push frame of the usual compact shape
 * ({"arg":{"channel":...,"instId":...},"action"?:...,"data":[...]}) and returns:
 *
 *   - a list of Ticker / Trade events for "tickers" / "trades" pushes (built exactly as
 *     the Python handlers in _normalise.py build them: exact Decimals through the shared
 *     decimal cache, UTC event times, the same keyword arguments);
 *   - for a book push of one data object, the events of its book engine, fed the
 *     (price, size) string levels as OkxBooks.on_parsed would (Fast.set_books); other
 *     book pushes go to on_book(channel, arg_inst_id, action, items, receive_time) with
 *     items (event_time, bids, asks, checksum, seq_id, prev_seq_id, inst_id);
 *   - for anything else or anything unusual (escapes in strings, a missing, repeated or
 *     mistyped field, a number that is not a plain decimal, invalid JSON, an unknown
 *     channel, any error): fallback(frame, receive_time), the Python path, which handles
 *     the frame and raises its own errors. Nothing is changed before a frame has been read
 *     completely and checked (only cache entries and symbols, as the Python path would
 *     add), so falling back is always safe.
 *
 * Without fallback/on_book (the instance tests inspect), the call returns the parsed book
 * tuple or None instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ parser */

typedef struct {
    const char *p;
    const char *end;
} Cur;

static inline void
ws(Cur *c)
{
    if (c->p < c->end && (unsigned char)*c->p > ' ') {
        return; /* the usual case: compact JSON */
    }
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) {
        c->p++;
    }
}

static inline int
expect(Cur *c, char ch)
{
    ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Bytes that end the fast scan of a string: '"', '\\' and control characters (NUL
 * included: the frame's buffer always ends with one, so the scan needs no bounds check). */
static unsigned char STOP[256];

/* The first byte at or after q that ends a string's fast scan (a STOP byte; the NUL
 * after the frame's end is one). (16 bytes a step with SSE2 gave no fewer instructions:
 * OKX's texts are ~7 bytes.) */
static inline const char *
scan_str(const char *q)
{
    while (!STOP[(unsigned char)*q]) {
        q++;
    }
    return q;
}

/* A string without escapes: sets *s, *n (content) and moves past the closing quote. */
static inline int
str_raw(Cur *c, const char **s, Py_ssize_t *n)
{
    ws(c);
    if (c->p >= c->end || *c->p != '"') {
        return 0;
    }
    const char *start = ++c->p;
    const char *q = scan_str(start);
    if (q >= c->end || *q != '"') {
        return 0; /* escapes, control characters (invalid JSON), the end: left to Python */
    }
    *s = start;
    *n = q - start;
    c->p = q + 1;
    return 1;
}

static int skip_value(Cur *c, int depth);

static int
skip_value(Cur *c, int depth)
{
    const char *s;
    Py_ssize_t n;
    ws(c);
    if (c->p >= c->end || depth > 32) {
        return 0;
    }
    char ch = *c->p;
    if (ch == '"') {
        return str_raw(c, &s, &n);
    }
    if (ch == '{' || ch == '[') {
        char close = ch == '{' ? '}' : ']';
        c->p++;
        if (expect(c, close)) {
            return 1;
        }
        for (;;) {
            if (ch == '{') {
                if (!str_raw(c, &s, &n) || !expect(c, ':')) {
                    return 0;
                }
            }
            if (!skip_value(c, depth + 1)) {
                return 0;
            }
            if (expect(c, ',')) {
                continue;
            }
            return expect(c, close);
        }
    }
    /* true, false, null */
    if (c->end - c->p >= 4 && (memcmp(c->p, "true", 4) == 0 || memcmp(c->p, "null", 4) == 0)) {
        c->p += 4;
        return 1;
    }
    if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
        c->p += 5;
        return 1;
    }
    /* a number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    const char *p = c->p, *end = c->end;
    if (p < end && *p == '-') {
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') {
        return 0;
    }
    if (*p == '0') {
        p++;
    }
    else {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < end && *p == '.') {
        const char *d = ++p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == d) {
            return 0;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        const char *d = p;
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
        if (p == d) {
            return 0;
        }
    }
    c->p = p;
    return 1;
}

/* A JSON integer (optionally negative): 1 on success. */
static inline int
int_value(Cur *c, long long *out)
{
    ws(c);
    const char *p = c->p;
    int neg = 0;
    if (p < c->end && *p == '-') {
        neg = 1;
        p++;
    }
    const char *digits = p;
    unsigned long long v = 0;
    while (p < c->end && *p >= '0' && *p <= '9') {
        if (p - digits >= 18) {
            return 0;
        }
        v = v * 10 + (unsigned long long)(*p - '0');
        p++;
    }
    if (p == digits || (p - digits > 1 && *digits == '0') ||
        (p < c->end && (*p == '.' || *p == 'e' || *p == 'E'))) {
        return 0; /* not a plain JSON integer (leading zeros are invalid JSON) */
    }
    c->p = p;
    *out = neg ? -(long long)v : (long long)v;
    return 1;
}

/* An integer given as a JSON number or as a string of digits (OKX "ts"): 1 on success. */
static inline int
int_or_digits(Cur *c, long long *out)
{
    ws(c);
    if (c->p < c->end && *c->p == '"') {
        const char *s;
        Py_ssize_t n;
        if (!str_raw(c, &s, &n) || n == 0 || n > 18 || (n > 1 && s[0] == '0')) {
            return 0;
        }
        long long v = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') {
                return 0;
            }
            v = v * 10 + (s[i] - '0');
        }
        *out = v;
        return 1;
    }
    return int_value(c, out);
}

/* An optional integer: a JSON integer (*present = 1) or null (*present = 0). */
static inline int
opt_int(Cur *c, long long *out, int *present)
{
    ws(c);
    if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
        c->p += 4;
        *present = 0;
        return 1;
    }
    *present = 1;
    return int_value(c, out);
}

/* Whether the n bytes at s are the string literal lit. */
#define key_is(s, n, lit) ((n) == (Py_ssize_t)sizeof(lit) - 1 && memcmp((s), (lit), (n)) == 0)

/* ------------------------------------------------------------------ the Fast type */

enum { T_LAST, T_LASTSZ, T_BIDPX, T_BIDSZ, T_ASKPX, T_ASKSZ, T_OPEN, T_HIGH, T_LOW, T_VOL,
       T_VOLCCY, T_NFIELDS };

/* The ticker field a key names (last, lastSz, bidPx, bidSz, askPx, askSz, open24h,
 * high24h, low24h, vol24h, volCcy24h: T_*), or -1: by length, then text. */
static inline int
ticker_field(const char *k, Py_ssize_t kn)
{
    switch (kn) {
    case 4:
        return memcmp(k, "last", 4) == 0 ? T_LAST : -1;
    case 5:
        if (memcmp(k, "bidPx", 5) == 0) {
            return T_BIDPX;
        }
        if (memcmp(k, "bidSz", 5) == 0) {
            return T_BIDSZ;
        }
        if (memcmp(k, "askPx", 5) == 0) {
            return T_ASKPX;
        }
        return memcmp(k, "askSz", 5) == 0 ? T_ASKSZ : -1;
    case 6:
        if (memcmp(k, "lastSz", 6) == 0) {
            return T_LASTSZ;
        }
        if (memcmp(k, "low24h", 6) == 0) {
            return T_LOW;
        }
        return memcmp(k, "vol24h", 6) == 0 ? T_VOL : -1;
    case 7:
        if (memcmp(k, "open24h", 7) == 0) {
            return T_OPEN;
        }
        return memcmp(k, "high24h", 7) == 0 ? T_HIGH : -1;
    case 9:
        return memcmp(k, "volCcy24h", 9) == 0 ? T_VOLCCY : -1;
    default:
        return -1;
    }
}

#define STR_SLOTS 4096
#define DEC_SLOTS 1024
#define CACHED_TEXT_MAX 32

static inline uint64_t
fnv1a(const char *s, Py_ssize_t n)
{
    /* (named for the byte-wise FNV-1a it was) 8-byte words with fixed-size loads only, the
     * last one ending at the last byte; texts under 8 bytes as two overlapping 4-byte words
     * or three bytes: cheaper than a byte loop or a variable-length tail copy. */
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)n;
    const char *end = s + n;
    uint64_t w = 0;
    if (n >= 8) {
        while (end - s > 8) {
            memcpy(&w, s, 8);
            h = (h ^ w) * 1099511628211ULL;
            h ^= h >> 32;
            s += 8;
        }
        memcpy(&w, end - 8, 8);
    }
    else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, end - 4, 4);
        w = ((uint64_t)a << 32) | b;
    }
    else if (n > 0) {
        w = (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
            (uint64_t)(unsigned char)s[n - 1] << 16;
    }
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

/* Whether the ASCII str u is s[:n]: up to 16 bytes as two overlapping 8-byte words. */
static inline int
same_text(PyObject *u, const char *s, Py_ssize_t n)
{
    if (PyUnicode_GET_LENGTH(u) != n) {
        return 0;
    }
    const char *d = (const char *)PyUnicode_1BYTE_DATA(u);
    if (n >= 8 && n <= 16) {
        uint64_t a, b, c, e;
        memcpy(&a, d, 8);
        memcpy(&b, s, 8);
        memcpy(&c, d + n - 8, 8);
        memcpy(&e, s + n - 8, 8);
        return a == b && c == e;
    }
    return memcmp(d, s, (size_t)n) == 0;
}

/* A book level as raw text in the frame (the layout of the core's raw_level, capsule
 * version 3: keep in step). */
struct raw_level {
    const char *px;
    Py_ssize_t pxn;
    const char *sz;
    Py_ssize_t szn;
};

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *venue;
    PyObject *ticker;   /* the Ticker type */
    PyObject *trade;    /* the Trade type */
    PyObject *cache;    /* dict: text -> Decimal (the plugin's decimal cache) */
    Py_ssize_t capacity;
    PyObject *symbols;  /* dict: instId -> symbol */
    PyObject *symbol_fn; /* instId -> symbol (stores it in symbols), may raise */
    PyObject *decimal;  /* decimal.Decimal */
    /* Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN).create_decimal, or None: the same
     * value as Decimal(text) for texts of at most 32 characters without an exponent (no
     * rounding, no exponent limit can apply), about 20 % cheaper to call */
    PyObject *exact;
    PyObject *book_channels; /* frozenset of book channel names */
    PyObject *ticker_kw; /* kwnames tuple */
    PyObject *trade_kw;
    PyObject *s_buy, *s_sell, *s_snapshot;
    PyObject *fallback; /* (frame, receive_time) -> events, or None: return None instead */
    PyObject *on_book;  /* (channel, arg_inst_id, action, items, receive_time) -> events */
    /* set_books(): the book engines fed directly (NULL: every book push goes to on_book) */
    PyObject *engines;      /* dict: channel -> BookEngine */
    PyObject *engine_fn;    /* channel -> BookEngine (creates it) */
    PyObject *book_symbols; /* dict: instId -> symbol */
    PyObject *book_symbol_fn; /* instId -> symbol (stores it) */
    PyObject *incremental;  /* frozenset of channels with snapshot + updates */
    PyObject *s_delta, *s_snap_m, *s_update, *delta_kw, *snapshot_kw;
    long long last_ms;
    PyObject *last_dt;
    /* Per-connection direct-mapped caches keyed by the text's bytes (fresh with every
     * normaliser): level price/size strings (a repeated text gives the same str, whose
     * hash CPython then keeps, so the book engine's dict lookups skip hashing it), and
     * text -> Decimal for ticker and trade values (no str, no dict lookup on a hit). */
    PyObject *strs[STR_SLOTS];
    PyObject *dec_keys[DEC_SLOTS];
    PyObject *dec_vals[DEC_SLOTS];
    /* The levels of the current frame's first book data object as raw text, while `lazy`
     * (its bids and asks are None in the parsed tuple until materialise() builds them):
     * an update goes to the core's engine_delta_raw without a str or tuple per level. */
    struct raw_levels {
        struct raw_level *v;
        Py_ssize_t n, cap;
    } raw[2]; /* bids, asks */
    int lazy;
    PyObject *frame; /* the frame being read (borrowed, during a call only) */
} Fast;

/* The members that can reach back to the normaliser (its bound methods and dicts), so
 * the garbage collector can break the cycle normaliser -> Fast -> bound method. */
static int
Fast_traverse(Fast *self, visitproc visit, void *arg)
{
    Py_VISIT(self->venue);
    Py_VISIT(self->ticker);
    Py_VISIT(self->trade);
    Py_VISIT(self->cache);
    Py_VISIT(self->symbols);
    Py_VISIT(self->symbol_fn);
    Py_VISIT(self->decimal);
    Py_VISIT(self->book_channels);
    Py_VISIT(self->fallback);
    Py_VISIT(self->on_book);
    Py_VISIT(self->exact);
    Py_VISIT(self->engines);
    Py_VISIT(self->engine_fn);
    Py_VISIT(self->book_symbols);
    Py_VISIT(self->book_symbol_fn);
    Py_VISIT(self->incremental);
    return 0;
}

static int
Fast_clear(Fast *self)
{
    Py_CLEAR(self->venue);
    Py_CLEAR(self->ticker);
    Py_CLEAR(self->trade);
    Py_CLEAR(self->cache);
    Py_CLEAR(self->symbols);
    Py_CLEAR(self->symbol_fn);
    Py_CLEAR(self->decimal);
    Py_CLEAR(self->book_channels);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->on_book);
    Py_CLEAR(self->exact);
    Py_CLEAR(self->engines);
    Py_CLEAR(self->engine_fn);
    Py_CLEAR(self->book_symbols);
    Py_CLEAR(self->book_symbol_fn);
    Py_CLEAR(self->incremental);
    Py_CLEAR(self->last_dt);
    for (int i = 0; i < STR_SLOTS; i++) {
        Py_CLEAR(self->strs[i]);
    }
    for (int i = 0; i < DEC_SLOTS; i++) {
        Py_CLEAR(self->dec_keys[i]);
        Py_CLEAR(self->dec_vals[i]);
    }
    return 0;
}

static void
Fast_dealloc(Fast *self)
{
    PyObject_GC_UnTrack(self);
    Fast_clear(self);
    PyMem_Free(self->raw[0].v);
    PyMem_Free(self->raw[1].v);
    Py_XDECREF(self->ticker_kw);
    Py_XDECREF(self->trade_kw);
    Py_XDECREF(self->s_buy);
    Py_XDECREF(self->s_sell);
    Py_XDECREF(self->s_snapshot);
    Py_XDECREF(self->s_delta);
    Py_XDECREF(self->s_snap_m);
    Py_XDECREF(self->s_update);
    Py_XDECREF(self->delta_kw);
    Py_XDECREF(self->snapshot_kw);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
kwnames(const char *const *names, Py_ssize_t n)
{
    PyObject *t = PyTuple_New(n);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyUnicode_InternFromString(names[i]);
        if (s == NULL) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

static const char *const TICKER_KW[] = {
    "venue", "symbol", "native_symbol", "event_time", "receive_time", "last", "last_size",
    "bid", "bid_size", "ask", "ask_size", "open_24h", "high_24h", "low_24h", "volume_24h",
    "quote_volume_24h"};
static const char *const TRADE_KW[] = {
    "venue", "symbol", "native_symbol", "event_time", "receive_time", "trade_id", "price",
    "size", "side", "sequence"};

static PyObject *Fast_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames_);

static PyObject *
Fast_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *venue, *ticker, *trade, *cache, *symbols, *symbol_fn, *decimal, *books;
    PyObject *fallback = Py_None, *on_book = Py_None, *exact = Py_None;
    Py_ssize_t capacity;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Fast() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "UOOO!nO!OOO!|OOO:Fast", &venue, &ticker, &trade, &PyDict_Type,
                          &cache, &capacity, &PyDict_Type, &symbols, &symbol_fn, &decimal,
                          &PyFrozenSet_Type, &books, &fallback, &on_book, &exact)) {
        return NULL;
    }
    Fast *self = (Fast *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(venue);
    self->venue = venue;
    Py_INCREF(ticker);
    self->ticker = ticker;
    Py_INCREF(trade);
    self->trade = trade;
    Py_INCREF(cache);
    self->cache = cache;
    self->capacity = capacity;
    Py_INCREF(symbols);
    self->symbols = symbols;
    Py_INCREF(symbol_fn);
    self->symbol_fn = symbol_fn;
    Py_INCREF(decimal);
    self->decimal = decimal;
    Py_INCREF(books);
    self->book_channels = books;
    Py_INCREF(fallback);
    self->fallback = fallback;
    Py_INCREF(on_book);
    self->on_book = on_book;
    Py_INCREF(exact);
    self->exact = exact;
    self->ticker_kw = kwnames(TICKER_KW, 16);
    self->trade_kw = kwnames(TRADE_KW, 10);
    self->s_buy = PyUnicode_InternFromString("buy");
    self->s_sell = PyUnicode_InternFromString("sell");
    self->s_snapshot = PyUnicode_InternFromString("snapshot");
    self->last_ms = -1;
    self->last_dt = NULL;
    self->vectorcall = Fast_vectorcall;
    if (self->ticker_kw == NULL || self->trade_kw == NULL || self->s_buy == NULL ||
        self->s_sell == NULL || self->s_snapshot == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* A str of UTF-8 text: ASCII (the usual case) copied straight in, one character from
 * CPython's shared single-character strings, anything else decoded. */
static inline PyObject *
text(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return PyUnicode_DecodeUTF8(s, n, NULL);
        }
    }
    if (n == 1) {
        return PyUnicode_FromOrdinal((unsigned char)s[0]);
    }
    PyObject *u = PyUnicode_New(n, 127);
    if (u != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(u), s, n);
    }
    return u;
}

/* text() through the per-connection string cache (ASCII texts of 2 to 32 bytes). */
static inline PyObject *
text_cached(Fast *self, const char *s, Py_ssize_t n)
{
    if (n < 2 || n > CACHED_TEXT_MAX) {
        return text(s, n);
    }
    PyObject **slot = &self->strs[fnv1a(s, n) & (STR_SLOTS - 1)];
    PyObject *u = *slot;
    if (u != NULL && same_text(u, s, n)) {
        Py_INCREF(u);
        return u;
    }
    u = text(s, n);
    if (u != NULL && PyUnicode_IS_COMPACT_ASCII(u)) {
        Py_INCREF(u);
        Py_XSETREF(*slot, u);
    }
    return u;
}

/* Plain decimal text: digits, '.', sign, exponent only (never NaN/Infinity, no spaces). */
static inline int
plain_number(const char *s, Py_ssize_t n)
{
    if (n == 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+' || ch == 'e' ||
              ch == 'E')) {
            return 0;
        }
    }
    return 1;
}

/* marketfeed._cbook's C API (capsule marketfeed._cbook._C_API; layout kept in step with
 * cbook_api in core/src/marketfeed/_cbook.c): Decimal objects of plain texts (digits, at
 * most one '.', at most 19 digits) built without calling the type, when the core's layout
 * check accepted _decimal. NULL (core not built or older): every Decimal comes from the
 * type, as before. Same value, same exponent, so the same Decimal either way. */
typedef struct {
    int version;
    PyTypeObject *decimal_type;
    PyObject *(*decimal_from_ascii)(const char *s, Py_ssize_t n);
    /* version >= 2: BookEngine.delta's common case (10 arguments), None to hand back */
    PyObject *(*engine_delta)(PyObject *const *args);
    /* version >= 3: the same with the levels as raw text (args[3], args[4] not read);
     * None (nothing changed) also for a text that is not plain: then decode and go on */
    PyObject *(*engine_delta_raw)(PyObject *const *args, const struct raw_level *bids,
                                  Py_ssize_t nb, const struct raw_level *asks, Py_ssize_t na);
    /* version >= 4: a sequence of (price, size) over raw texts, keeping `owner` alive,
     * that the core's book sides load from the text itself (for snapshots) */
    PyObject *(*raw_levels)(PyObject *owner, const struct raw_level *v, Py_ssize_t n);
} cbook_api;

static const cbook_api *CBOOK;

/* Decimal of a plain number. When `cached`: the connection's direct-mapped slot first;
 * on a miss a text the core builds directly (digits, one '.', <= 19 digits) is built and
 * kept in the slot only, any other goes through the shared cache (misses stored, the
 * cache cleared at capacity, as _decode.cache_miss). New reference, or NULL (error set or
 * not: the caller falls back either way). */
static PyObject *
to_decimal(Fast *self, const char *s, Py_ssize_t n, int cached)
{
    Py_ssize_t di = -1;
    if (cached && n <= CACHED_TEXT_MAX) {
        di = (Py_ssize_t)(fnv1a(s, n) & (DEC_SLOTS - 1));
        PyObject *k = self->dec_keys[di];
        if (k != NULL && same_text(k, s, n)) { /* a text stored after the checks below */
            Py_INCREF(self->dec_vals[di]);
            return self->dec_vals[di];
        }
    }
    if (!plain_number(s, n)) {
        return NULL;
    }
    int fast = CBOOK != NULL && CBOOK->decimal_type != NULL &&
               self->decimal == (PyObject *)CBOOK->decimal_type;
    if (fast) {
        /* a plain text's Decimal is built directly (cheaper than the shared dict's hash,
         * probe and store); only the connection's slot keeps it */
        PyObject *d = CBOOK->decimal_from_ascii(s, n); /* equal to decimal(t) and exact(t) */
        if (d != NULL) {
            if (di >= 0) {
                PyObject *t = text(s, n);
                if (t == NULL) {
                    Py_DECREF(d);
                    return NULL;
                }
                Py_INCREF(d);
                Py_XSETREF(self->dec_keys[di], t);
                Py_XSETREF(self->dec_vals[di], d);
            }
            return d;
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    PyObject *t = text(s, n);
    if (t == NULL) {
        return NULL;
    }
    if (cached) {
        PyObject *hit = PyDict_GetItemWithError(self->cache, t);
        if (hit != NULL) {
            Py_INCREF(hit);
            if (di >= 0) {
                Py_INCREF(hit);
                Py_XSETREF(self->dec_keys[di], t);
                Py_XSETREF(self->dec_vals[di], hit);
            }
            else {
                Py_DECREF(t);
            }
            return hit;
        }
        if (PyErr_Occurred()) {
            Py_DECREF(t);
            return NULL;
        }
    }
    /* not built directly: the type (through the shared cache when cached) */
    PyObject *d = PyObject_CallOneArg(
        self->exact != Py_None && n <= CACHED_TEXT_MAX && memchr(s, 'e', n) == NULL &&
                memchr(s, 'E', n) == NULL
            ? self->exact
            : self->decimal,
        t);
    if (d != NULL && cached) {
        if (PyDict_GET_SIZE(self->cache) >= self->capacity) {
            PyDict_Clear(self->cache);
        }
        if (PyDict_SetItem(self->cache, t, d) < 0) {
            Py_CLEAR(d);
        }
        else if (di >= 0) {
            Py_INCREF(t);
            Py_INCREF(d);
            Py_XSETREF(self->dec_keys[di], t);
            Py_XSETREF(self->dec_vals[di], d);
        }
    }
    Py_DECREF(t);
    return d;
}

/* UTC datetime of epoch milliseconds (equal to datetime.fromtimestamp(ms / 1000, UTC)). */
static PyObject *
ms_datetime(long long ms)
{
    if (ms < 0 || ms > 253402300799999LL) {
        return NULL;
    }
    long long days = ms / 86400000LL;
    long long rem = ms % 86400000LL;
    /* civil_from_days (H. Hinnant) */
    long long z = days + 719468;
    long long era = z / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = yoe + era * 400;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    long long d = doy - (153 * mp + 2) / 5 + 1;
    long long m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) {
        y += 1;
    }
    int hour = (int)(rem / 3600000LL);
    int minute = (int)(rem / 60000LL % 60);
    int second = (int)(rem / 1000LL % 60);
    int usec = (int)(rem % 1000LL) * 1000;
    return PyDateTimeAPI->DateTime_FromDateAndTime((int)y, (int)m, (int)d, hour, minute, second,
                                                   usec, PyDateTime_TimeZone_UTC,
                                                   PyDateTimeAPI->DateTimeType);
}

static PyObject *
event_time(Fast *self, long long ms)
{
    if (ms != self->last_ms || self->last_dt == NULL) {
        PyObject *dt = ms_datetime(ms);
        if (dt == NULL) {
            return NULL;
        }
        Py_XSETREF(self->last_dt, dt);
        self->last_ms = ms;
    }
    Py_INCREF(self->last_dt);
    return self->last_dt;
}

static PyObject *
symbol_of(Fast *self, PyObject *inst)
{
    PyObject *sym = PyDict_GetItemWithError(self->symbols, inst);
    if (sym != NULL) {
        if (PyObject_IsTrue(sym) == 1) {
            Py_INCREF(sym);
            return sym;
        }
    }
    else if (PyErr_Occurred()) {
        return NULL;
    }
    return PyObject_CallOneArg(self->symbol_fn, inst);
}

/* instId contains exactly one '-' (a spot pair). */
static inline int
one_dash(const char *s, Py_ssize_t n)
{
    int k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        k += s[i] == '-';
    }
    return k == 1;
}

/* One "tickers" data object -> a Ticker (new reference) or NULL. */
static PyObject *
ticker_item(Fast *self, Cur *c, PyObject *receive_time)
{
    const char *fs[T_NFIELDS];
    Py_ssize_t fn[T_NFIELDS];
    const char *inst = NULL, *itype = "";
    Py_ssize_t inst_n = 0, itype_n = 0;
    long long ts = 0;
    int have_ts = 0;
    for (int i = 0; i < T_NFIELDS; i++) {
        fs[i] = "";
        fn[i] = 0;
    }
    if (!expect(c, '{')) {
        return NULL;
    }
    if (!expect(c, '}')) {
        for (;;) {
            const char *k;
            Py_ssize_t kn;
            if (!str_raw(c, &k, &kn) || !expect(c, ':')) {
                return NULL;
            }
            int done = 0;
            if (key_is(k, kn, "instId")) {
                if (!str_raw(c, &inst, &inst_n)) {
                    return NULL;
                }
                done = 1;
            }
            else if (key_is(k, kn, "instType")) {
                if (!str_raw(c, &itype, &itype_n)) {
                    return NULL;
                }
                done = 1;
            }
            else if (key_is(k, kn, "ts")) {
                if (!int_or_digits(c, &ts)) {
                    return NULL;
                }
                have_ts = done = 1;
            }
            else {
                int i = ticker_field(k, kn);
                if (i >= 0) {
                    if (!str_raw(c, &fs[i], &fn[i])) {
                        return NULL;
                    }
                    done = 1;
                }
            }
            if (!done && !skip_value(c, 0)) {
                return NULL;
            }
            if (expect(c, ',')) {
                continue;
            }
            if (!expect(c, '}')) {
                return NULL;
            }
            break;
        }
    }
    if (inst == NULL || !have_ts) {
        return NULL;
    }
    PyObject *args[16] = {NULL};
    PyObject *result = NULL;
    args[0] = self->venue;
    Py_INCREF(args[0]);
    args[2] = text_cached(self, inst, inst_n);
    if (args[2] == NULL || (args[1] = symbol_of(self, args[2])) == NULL ||
        (args[3] = event_time(self, ts)) == NULL) {
        goto done;
    }
    args[4] = receive_time;
    Py_INCREF(receive_time);
    /* last, lastSz, bidPx, bidSz, askPx, askSz, open, high, low: cached; volumes fresh */
    for (int i = 0; i < T_VOL; i++) {
        if (fn[i] == 0) {
            args[5 + i] = Py_None;
            Py_INCREF(Py_None);
        }
        else if ((args[5 + i] = to_decimal(self, fs[i], fn[i], 1)) == NULL) {
            goto done;
        }
    }
    if (fn[T_VOL] == 0) {
        args[14] = Py_None;
        Py_INCREF(Py_None);
    }
    else if ((args[14] = to_decimal(self, fs[T_VOL], fn[T_VOL], 0)) == NULL) {
        goto done;
    }
    int spot = (itype_n == 4 && memcmp(itype, "SPOT", 4) == 0) ||
               (itype_n == 6 && memcmp(itype, "MARGIN", 6) == 0) ||
               (itype_n == 0 && one_dash(inst, inst_n));
    if (!spot || fn[T_VOLCCY] == 0) {
        args[15] = Py_None;
        Py_INCREF(Py_None);
    }
    else if ((args[15] = to_decimal(self, fs[T_VOLCCY], fn[T_VOLCCY], 0)) == NULL) {
        goto done;
    }
    result = PyObject_Vectorcall(self->ticker, args, 0, self->ticker_kw);
done:
    for (int i = 0; i < 16; i++) {
        Py_XDECREF(args[i]);
    }
    return result;
}

/* One "trades" data object -> a Trade (new reference) or NULL. */
static PyObject *
trade_item(Fast *self, Cur *c, PyObject *receive_time)
{
    const char *inst = NULL, *tid = NULL, *px = NULL, *sz = NULL, *side = NULL;
    Py_ssize_t inst_n = 0, tid_n = 0, px_n = 0, sz_n = 0, side_n = 0;
    long long ts = 0, seq = 0;
    int have_ts = 0, have_seq = 0;
    if (!expect(c, '{')) {
        return NULL;
    }
    if (!expect(c, '}')) {
        for (;;) {
            const char *k;
            Py_ssize_t kn;
            if (!str_raw(c, &k, &kn) || !expect(c, ':')) {
                return NULL;
            }
            int ok;
            if (key_is(k, kn, "instId")) {
                ok = str_raw(c, &inst, &inst_n);
            }
            else if (key_is(k, kn, "tradeId")) {
                ok = str_raw(c, &tid, &tid_n);
            }
            else if (key_is(k, kn, "px")) {
                ok = str_raw(c, &px, &px_n);
            }
            else if (key_is(k, kn, "sz")) {
                ok = str_raw(c, &sz, &sz_n);
            }
            else if (key_is(k, kn, "side")) {
                ok = str_raw(c, &side, &side_n);
            }
            else if (key_is(k, kn, "ts")) {
                ok = have_ts = int_or_digits(c, &ts);
            }
            else if (key_is(k, kn, "seqId")) {
                ok = opt_int(c, &seq, &have_seq);
            }
            else {
                ok = skip_value(c, 0);
            }
            if (!ok) {
                return NULL;
            }
            if (expect(c, ',')) {
                continue;
            }
            if (!expect(c, '}')) {
                return NULL;
            }
            break;
        }
    }
    if (inst == NULL || tid == NULL || px == NULL || sz == NULL || side == NULL || !have_ts) {
        return NULL;
    }
    PyObject *side_obj;
    if (side_n == 3 && memcmp(side, "buy", 3) == 0) {
        side_obj = self->s_buy;
    }
    else if (side_n == 4 && memcmp(side, "sell", 4) == 0) {
        side_obj = self->s_sell;
    }
    else {
        return NULL;
    }
    PyObject *args[10] = {NULL};
    PyObject *result = NULL;
    args[0] = self->venue;
    Py_INCREF(args[0]);
    args[2] = text_cached(self, inst, inst_n);
    if (args[2] == NULL || (args[1] = symbol_of(self, args[2])) == NULL ||
        (args[3] = event_time(self, ts)) == NULL) {
        goto done;
    }
    args[4] = receive_time;
    Py_INCREF(receive_time);
    if ((args[5] = text(tid, tid_n)) == NULL || (args[6] = to_decimal(self, px, px_n, 1)) == NULL ||
        (args[7] = to_decimal(self, sz, sz_n, 1)) == NULL) {
        goto done;
    }
    args[8] = side_obj;
    Py_INCREF(side_obj);
    if (have_seq) {
        if ((args[9] = PyLong_FromLongLong(seq)) == NULL) {
            goto done;
        }
    }
    else {
        args[9] = Py_None;
        Py_INCREF(Py_None);
    }
    result = PyObject_Vectorcall(self->trade, args, 0, self->trade_kw);
done:
    for (int i = 0; i < 10; i++) {
        Py_XDECREF(args[i]);
    }
    return result;
}

/* [[px, sz, ...strings], ...] -> list of (px, sz) tuples (new reference) or NULL. */
static PyObject *
levels(Fast *self, Cur *c)
{
    if (!expect(c, '[')) {
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    if (expect(c, ']')) {
        return out;
    }
    for (;;) {
        const char *s[2];
        Py_ssize_t n[2];
        if (!expect(c, '[') || !str_raw(c, &s[0], &n[0]) || !expect(c, ',') ||
            !str_raw(c, &s[1], &n[1])) {
            goto fail;
        }
        while (expect(c, ',')) { /* OKX's "0" and order count: strings, not kept */
            const char *x;
            Py_ssize_t xn;
            if (!str_raw(c, &x, &xn)) {
                goto fail;
            }
        }
        if (!expect(c, ']')) {
            goto fail;
        }
        PyObject *px = text_cached(self, s[0], n[0]);
        PyObject *sz = px == NULL ? NULL : text_cached(self, s[1], n[1]);
        if (sz == NULL) {
            Py_XDECREF(px);
            goto fail;
        }
        PyObject *lv = PyTuple_New(2);
        if (lv == NULL) {
            Py_DECREF(px);
            Py_DECREF(sz);
            goto fail;
        }
        PyTuple_SET_ITEM(lv, 0, px);
        PyTuple_SET_ITEM(lv, 1, sz);
        int r = PyList_Append(out, lv);
        Py_DECREF(lv);
        if (r < 0) {
            goto fail;
        }
        if (expect(c, ',')) {
            continue;
        }
        if (expect(c, ']')) {
            return out;
        }
        goto fail;
    }
fail:
    Py_DECREF(out);
    return NULL;
}

/* One level in the compact form OKX sends, ["px","sz","0","4"] without white space or
 * escapes: s[0..1], n[0..1] set to the price and size texts and the cursor moved past the
 * ']', or 0 with the cursor unmoved (the general scan then reads the level). Reads stop
 * at the NUL that ends every frame's buffer (see STOP), so no bounds check is needed. */
static inline int
level_compact(Cur *c, const char **s, Py_ssize_t *n)
{
    const char *p = c->p, *q;
    if (p[0] != '[' || p[1] != '"') {
        return 0;
    }
    p += 2; /* the price text */
    q = scan_str(p);
    if (*q != '"' || q[1] != ',' || q[2] != '"') {
        return 0;
    }
    s[0] = p;
    n[0] = q - p;
    p = q + 3; /* the size text */
    q = scan_str(p);
    if (*q != '"') {
        return 0;
    }
    s[1] = p;
    n[1] = q - p;
    p = q + 1;
    while (*p == ',' && p[1] == '"') { /* OKX's "0" and order count: not kept */
        q = scan_str(p + 2);
        if (*q != '"') {
            return 0;
        }
        p = q + 1;
    }
    if (*p != ']') {
        return 0;
    }
    c->p = p + 1;
    return 1;
}

/* [[px, sz, ...strings], ...] as raw text into self->raw[which] (replacing what it held):
 * the same grammar as levels(), no object made. 1, or 0 (not read; error set or not). */
static int
levels_raw(Fast *self, Cur *c, int which)
{
    struct raw_levels *r = &self->raw[which];
    r->n = 0;
    if (!expect(c, '[')) {
        return 0;
    }
    if (expect(c, ']')) {
        return 1;
    }
    for (;;) {
        const char *s[2];
        Py_ssize_t n[2];
        if (!level_compact(c, s, n)) {
            if (!expect(c, '[') || !str_raw(c, &s[0], &n[0]) || !expect(c, ',') ||
                !str_raw(c, &s[1], &n[1])) {
                return 0;
            }
            while (expect(c, ',')) { /* OKX's "0" and order count: strings, not kept */
                const char *x;
                Py_ssize_t xn;
                if (!str_raw(c, &x, &xn)) {
                    return 0;
                }
            }
            if (!expect(c, ']')) {
                return 0;
            }
        }
        if (r->n == r->cap) {
            Py_ssize_t cap = r->cap ? 2 * r->cap : 64;
            struct raw_level *v = PyMem_Realloc(r->v, (size_t)cap * sizeof(*v));
            if (v == NULL) {
                PyErr_NoMemory();
                return 0;
            }
            r->v = v;
            r->cap = cap;
        }
        r->v[r->n++] = (struct raw_level){s[0], n[0], s[1], n[1]};
        if (expect(c, ',')) {
            continue;
        }
        return expect(c, ']');
    }
}

/* self->raw[which] as levels() gives them: a list of (px, sz) str tuples. */
static PyObject *
raw_list(Fast *self, int which)
{
    struct raw_levels *r = &self->raw[which];
    PyObject *out = PyList_New(r->n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < r->n; i++) {
        PyObject *px = text_cached(self, r->v[i].px, r->v[i].pxn);
        PyObject *sz = px == NULL ? NULL : text_cached(self, r->v[i].sz, r->v[i].szn);
        PyObject *lv = sz == NULL ? NULL : PyTuple_New(2);
        if (lv == NULL) {
            Py_XDECREF(px);
            Py_XDECREF(sz);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(lv, 0, px);
        PyTuple_SET_ITEM(lv, 1, sz);
        PyList_SET_ITEM(out, i, lv);
    }
    return out;
}

/* Give the lazy data object (`item`, not yet seen by Python code) its bids and asks lists
 * in place of the None it holds. 0, or -1 with an exception. */
static int
materialise_item(Fast *self, PyObject *item)
{
    if (!self->lazy) {
        return 0;
    }
    self->lazy = 0;
    for (int which = 0; which < 2; which++) {
        PyObject *list = raw_list(self, which);
        if (list == NULL) {
            return -1;
        }
        PyObject *old = PyTuple_GET_ITEM(item, 1 + which);
        PyTuple_SET_ITEM(item, 1 + which, list);
        Py_DECREF(old);
    }
    return 0;
}

/* materialise_item for a parsed book tuple (channel, inst, action, items). */
static int
materialise(Fast *self, PyObject *parsed)
{
    if (!self->lazy) {
        return 0;
    }
    return materialise_item(self, PyList_GET_ITEM(PyTuple_GET_ITEM(parsed, 3), 0));
}

static PyObject *
opt_long(int present, long long v)
{
    if (!present) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLongLong(v);
}

/* One book data object -> (event_time, bids, asks, checksum, seqId, prevSeqId, instId) or
 * NULL. */
static PyObject *
book_item(Fast *self, Cur *c, int lazy)
{
    PyObject *bids = NULL, *asks = NULL, *result = NULL;
    const char *inst = "";
    Py_ssize_t inst_n = 0;
    long long ts = 0, ck = 0, seq = 0, prev = 0;
    int have_ts = 0, have_ck = 0, have_seq = 0, have_prev = 0;
    if (!expect(c, '{')) {
        return NULL;
    }
    if (!expect(c, '}')) {
        for (;;) {
            const char *k;
            Py_ssize_t kn;
            if (!str_raw(c, &k, &kn) || !expect(c, ':')) {
                goto done;
            }
            int ok;
            if (key_is(k, kn, "asks")) {
                Py_XDECREF(asks);
                if (lazy) {
                    ok = levels_raw(self, c, 1);
                    asks = Py_NewRef(Py_None);
                }
                else {
                    ok = (asks = levels(self, c)) != NULL;
                }
            }
            else if (key_is(k, kn, "bids")) {
                Py_XDECREF(bids);
                if (lazy) {
                    ok = levels_raw(self, c, 0);
                    bids = Py_NewRef(Py_None);
                }
                else {
                    ok = (bids = levels(self, c)) != NULL;
                }
            }
            else if (key_is(k, kn, "ts")) {
                ok = have_ts = int_or_digits(c, &ts);
            }
            else if (key_is(k, kn, "checksum")) {
                ok = opt_int(c, &ck, &have_ck);
            }
            else if (key_is(k, kn, "seqId")) {
                ok = opt_int(c, &seq, &have_seq);
            }
            else if (key_is(k, kn, "prevSeqId")) {
                ok = opt_int(c, &prev, &have_prev);
            }
            else if (key_is(k, kn, "instId")) {
                ok = str_raw(c, &inst, &inst_n);
            }
            else {
                ok = skip_value(c, 0);
            }
            if (!ok) {
                goto done;
            }
            if (expect(c, ',')) {
                continue;
            }
            if (!expect(c, '}')) {
                goto done;
            }
            break;
        }
    }
    if (!have_ts) {
        goto done;
    }
    if (lazy) { /* a side the object did not hold: no levels */
        if (bids == NULL) {
            self->raw[0].n = 0;
            bids = Py_NewRef(Py_None);
        }
        if (asks == NULL) {
            self->raw[1].n = 0;
            asks = Py_NewRef(Py_None);
        }
    }
    if (bids == NULL && (bids = PyList_New(0)) == NULL) {
        goto done;
    }
    if (asks == NULL && (asks = PyList_New(0)) == NULL) {
        goto done;
    }
    /* (event_time, bids, asks, checksum, seq_id, prev_seq_id, inst_id), without parsing
     * a format string as Py_BuildValue would */
    PyObject *vals[7] = {ms_datetime(ts), Py_NewRef(bids), Py_NewRef(asks),
                         opt_long(have_ck, ck), opt_long(have_seq, seq),
                         opt_long(have_prev, prev), text_cached(self, inst, inst_n)};
    result = PyTuple_New(7);
    for (int i = 0; i < 7; i++) {
        if (vals[i] == NULL || result == NULL) {
            Py_CLEAR(result);
            for (int j = 0; j < 7; j++) {
                Py_XDECREF(vals[j]);
            }
            break;
        }
    }
    if (result != NULL) {
        for (int i = 0; i < 7; i++) {
            PyTuple_SET_ITEM(result, i, vals[i]);
        }
    }
    if (result != NULL && lazy) {
        self->lazy = 1;
    }
done:
    Py_XDECREF(bids);
    Py_XDECREF(asks);
    return result;
}

enum { CH_OTHER, CH_TICKERS, CH_TRADES, CH_BOOK };

/* The frame (str or bytes) read: a list, a book tuple or None (new reference). */
static PyObject *
parse(Fast *self, PyObject *frame, PyObject *receive_time)
{
    Py_ssize_t size;
    const char *buf;
    if (PyUnicode_CheckExact(frame)) {
        buf = PyUnicode_AsUTF8AndSize(frame, &size);
        if (buf == NULL) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    }
    else if (PyBytes_CheckExact(frame)) {
        buf = PyBytes_AS_STRING(frame);
        size = PyBytes_GET_SIZE(frame);
    }
    else {
        Py_RETURN_NONE;
    }
    Cur cur = {buf, buf + size};
    Cur *c = &cur;
    self->lazy = 0;
    PyObject *out = NULL, *channel = NULL, *arg_inst = NULL, *action = NULL;
    int kind = CH_OTHER;
    int have_arg = 0;
    const char *ch_s = NULL;
    Py_ssize_t ch_n = 0;
    if (!expect(c, '{')) {
        goto fallback;
    }
    for (;;) {
        const char *k;
        Py_ssize_t kn;
        if (!str_raw(c, &k, &kn) || !expect(c, ':')) {
            goto fallback;
        }
        /* a repeated arg, action or data: msgspec keeps the last, left to it */
        if (key_is(k, kn, "arg")) {
            if (have_arg) {
                goto fallback;
            }
            const char *inst_s = "";
            Py_ssize_t inst_n = 0;
            if (!expect(c, '{')) {
                goto fallback;
            }
            for (;;) {
                const char *ak;
                Py_ssize_t akn;
                if (!str_raw(c, &ak, &akn) || !expect(c, ':')) {
                    goto fallback;
                }
                int ok;
                if (key_is(ak, akn, "channel")) {
                    ok = str_raw(c, &ch_s, &ch_n);
                }
                else if (key_is(ak, akn, "instId")) {
                    ok = str_raw(c, &inst_s, &inst_n);
                }
                else {
                    ok = skip_value(c, 0);
                }
                if (!ok) {
                    goto fallback;
                }
                if (expect(c, ',')) {
                    continue;
                }
                if (!expect(c, '}')) {
                    goto fallback;
                }
                break;
            }
            if (ch_s == NULL) {
                goto fallback;
            }
            have_arg = 1;
            if (key_is(ch_s, ch_n, "tickers")) {
                kind = CH_TICKERS;
            }
            else if (key_is(ch_s, ch_n, "trades")) {
                kind = CH_TRADES;
            }
            else {
                if ((channel = text_cached(self, ch_s, ch_n)) == NULL) {
                    goto fallback;
                }
                int r = PySet_Contains(self->book_channels, channel);
                if (r != 1) {
                    goto fallback;
                }
                kind = CH_BOOK;
                if ((arg_inst = text_cached(self, inst_s, inst_n)) == NULL) {
                    goto fallback;
                }
            }
        }
        else if (key_is(k, kn, "action")) {
            const char *as;
            if (action != NULL) {
                goto fallback;
            }
            Py_ssize_t an;
            if (!str_raw(c, &as, &an) || (action = text(as, an)) == NULL) {
                goto fallback;
            }
        }
        else if (key_is(k, kn, "data")) {
            if (!have_arg || out != NULL || !expect(c, '[') || (out = PyList_New(0)) == NULL) {
                goto fallback;
            }
            if (!expect(c, ']')) {
                for (;;) {
                    PyObject *item;
                    if (kind == CH_TICKERS) {
                        item = ticker_item(self, c, receive_time);
                    }
                    else if (kind == CH_TRADES) {
                        item = trade_item(self, c, receive_time);
                    }
                    else {
                        /* the first object's levels stay raw text (see Fast.lazy) while
                         * it is the only one */
                        if (self->lazy &&
                            materialise_item(self, PyList_GET_ITEM(out, 0)) < 0) {
                            goto fallback;
                        }
                        item = book_item(self, c, PyList_GET_SIZE(out) == 0);
                    }
                    if (item == NULL) {
                        goto fallback;
                    }
                    int r = PyList_Append(out, item);
                    Py_DECREF(item);
                    if (r < 0) {
                        goto fallback;
                    }
                    if (expect(c, ',')) {
                        continue;
                    }
                    if (!expect(c, ']')) {
                        goto fallback;
                    }
                    break;
                }
            }
        }
        else if (key_is(k, kn, "event") || !skip_value(c, 0)) {
            goto fallback;
        }
        if (expect(c, ',')) {
            continue;
        }
        if (!expect(c, '}')) {
            goto fallback;
        }
        break;
    }
    ws(c);
    if (c->p != c->end || out == NULL) {
        goto fallback;
    }
    if (kind == CH_BOOK) {
        if (action == NULL) {
            action = self->s_snapshot;
            Py_INCREF(action);
        }
        PyObject *t = PyTuple_Pack(4, channel, arg_inst, action, out);
        Py_DECREF(out);
        out = t;
    }
    Py_XDECREF(channel);
    Py_XDECREF(arg_inst);
    Py_XDECREF(action);
    if (out == NULL) {
        PyErr_Clear();
        self->lazy = 0;
        Py_RETURN_NONE;
    }
    return out;
fallback:
    PyErr_Clear();
    self->lazy = 0;
    Py_XDECREF(out);
    Py_XDECREF(channel);
    Py_XDECREF(arg_inst);
    Py_XDECREF(action);
    Py_RETURN_NONE;
}

static const char *const DELTA_KW[] = {"event_time", "receive_time", "sequence",
                                       "prev_sequence", "checksum"};
static const char *const SNAPSHOT_KW[] = {"event_time", "receive_time", "sequence", "checksum"};

PyDoc_STRVAR(set_books_doc,
"set_books(engines, engine_fn, symbols, symbol_fn, incremental, /)\n\n"
"Feed a one-object book push straight to its engine, as OkxBooks.on_parsed does:\n"
"engines (dict channel -> BookEngine), engine_fn(channel) creating one, symbols (dict\n"
"instId -> symbol), symbol_fn(instId) storing one, incremental (frozenset of channels\n"
"with snapshots and updates). Other book pushes still go to on_book.");

static PyObject *
Fast_set_books(Fast *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[2]) ||
        !PyFrozenSet_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError,
                        "set_books(engines: dict, engine_fn, symbols: dict, symbol_fn, "
                        "incremental: frozenset)");
        return NULL;
    }
    if (self->s_delta == NULL) {
        self->s_delta = PyUnicode_InternFromString("delta");
        self->s_snap_m = PyUnicode_InternFromString("snapshot");
        self->s_update = PyUnicode_InternFromString("update");
        self->delta_kw = kwnames(DELTA_KW, 5);
        self->snapshot_kw = kwnames(SNAPSHOT_KW, 4);
        if (self->s_delta == NULL || self->s_snap_m == NULL || self->s_update == NULL ||
            self->delta_kw == NULL || self->snapshot_kw == NULL) {
            return NULL;
        }
    }
    Py_INCREF(args[0]);
    Py_XSETREF(self->engines, args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(self->engine_fn, args[1]);
    Py_INCREF(args[2]);
    Py_XSETREF(self->book_symbols, args[2]);
    Py_INCREF(args[3]);
    Py_XSETREF(self->book_symbol_fn, args[3]);
    Py_INCREF(args[4]);
    Py_XSETREF(self->incremental, args[4]);
    Py_RETURN_NONE;
}

static PyMethodDef Fast_methods[] = {
    {"set_books", (PyCFunction)(void (*)(void))Fast_set_books, METH_FASTCALL, set_books_doc},
    {NULL, NULL, 0, NULL},
};

static int
str_equal(PyObject *s, PyObject *interned)
{
    if (s == interned) {
        return 1;
    }
    return PyUnicode_CheckExact(s) && PyUnicode_Compare(s, interned) == 0;
}

/* A parsed book push of one data object fed straight to its engine. Returns 0 when it
 * leaves the push to on_book (nothing changed, no error set), else 1 with *result the
 * engine's events (NULL: the engine raised). */
static int
book_direct(Fast *self, PyObject *parsed, PyObject *receive_time, PyObject **result)
{
    PyObject *channel = PyTuple_GET_ITEM(parsed, 0);
    PyObject *arg_inst = PyTuple_GET_ITEM(parsed, 1);
    PyObject *action = PyTuple_GET_ITEM(parsed, 2);
    PyObject *items = PyTuple_GET_ITEM(parsed, 3);
    if (PyList_GET_SIZE(items) != 1) {
        return 0;
    }
    int incremental = PySet_Contains(self->incremental, channel);
    if (incremental < 0) {
        PyErr_Clear();
        return 0;
    }
    int update = 0;
    if (incremental) {
        if (str_equal(action, self->s_update)) {
            update = 1;
        }
        else if (!str_equal(action, self->s_snap_m)) {
            PyErr_Clear();
            return 0; /* on_parsed raises for an unknown action */
        }
    }
    PyObject *item = PyList_GET_ITEM(items, 0);
    PyObject *inst = PyUnicode_GET_LENGTH(arg_inst) ? arg_inst : PyTuple_GET_ITEM(item, 6);
    if (PyUnicode_GET_LENGTH(inst) == 0) {
        return 0; /* on_parsed raises */
    }
    PyObject *engine = PyDict_GetItemWithError(self->engines, channel);
    if (engine != NULL) {
        Py_INCREF(engine);
    }
    else if (PyErr_Occurred() || (engine = PyObject_CallOneArg(self->engine_fn, channel)) == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *symbol = PyDict_GetItemWithError(self->book_symbols, inst);
    if (symbol != NULL) {
        Py_INCREF(symbol);
    }
    else if (PyErr_Occurred() ||
             (symbol = PyObject_CallOneArg(self->book_symbol_fn, inst)) == NULL) {
        PyErr_Clear();
        Py_DECREF(engine);
        return 0;
    }
    PyObject *checksum = PyTuple_GET_ITEM(item, 3);
    PyObject *seq = PyTuple_GET_ITEM(item, 4);
    if (!incremental) {
        checksum = Py_None; /* books5/bbo-tbt carry none */
    }
    else if (checksum != Py_None && seq != Py_None && PyLong_CheckExact(checksum) &&
             PyLong_AsLongLong(checksum) == 0) {
        checksum = Py_None; /* deprecated field, always 0 since 2026-06-23 */
    }
    PyObject *event_time = PyTuple_GET_ITEM(item, 0);
    if (update && self->lazy && CBOOK != NULL && CBOOK->version >= 3) {
        /* the levels as raw text: strings only for what the book keeps */
        PyObject *call[10] = {engine, inst, symbol, Py_None, Py_None, event_time,
                              receive_time, seq, PyTuple_GET_ITEM(item, 5), checksum};
        *result = CBOOK->engine_delta_raw(call, self->raw[0].v, self->raw[0].n,
                                          self->raw[1].v, self->raw[1].n);
        if (*result != Py_None) { /* its events, or NULL: its error */
            Py_DECREF(engine);
            Py_DECREF(symbol);
            return 1;
        }
        Py_CLEAR(*result); /* not its case, nothing changed: as str levels below */
    }
    if (!update && self->lazy && CBOOK != NULL && CBOOK->version >= 4) {
        /* a snapshot: its levels as RawLevels over the frame (no str or tuple per level
         * here; the book's sides read the text) */
        PyObject *rb = CBOOK->raw_levels(self->frame, self->raw[0].v, self->raw[0].n);
        PyObject *ra = rb == NULL ? NULL : CBOOK->raw_levels(self->frame, self->raw[1].v,
                                                             self->raw[1].n);
        self->lazy = 0;
        if (ra == NULL) {
            Py_XDECREF(rb);
            *result = NULL;
        }
        else {
            PyObject *call[9] = {engine, inst, symbol, rb, ra, event_time, receive_time, seq,
                                 checksum};
            *result = PyObject_VectorcallMethod(self->s_snap_m, call, 5, self->snapshot_kw);
            Py_DECREF(rb);
            Py_DECREF(ra);
        }
        Py_DECREF(engine);
        Py_DECREF(symbol);
        return 1;
    }
    if (materialise_item(self, item) < 0) {
        *result = NULL;
        Py_DECREF(engine);
        Py_DECREF(symbol);
        return 1;
    }
    PyObject *bids = PyTuple_GET_ITEM(item, 1), *asks = PyTuple_GET_ITEM(item, 2);
    if (update) {
        PyObject *call[10] = {engine, inst, symbol, bids, asks, event_time, receive_time,
                              seq, PyTuple_GET_ITEM(item, 5), checksum};
        if (CBOOK != NULL && CBOOK->version >= 2) { /* the core's BookEngine.delta in C */
            *result = CBOOK->engine_delta(call);
            if (*result == Py_None) { /* not its case: the method (same events) */
                Py_CLEAR(*result);
                *result = PyObject_VectorcallMethod(self->s_delta, call, 5, self->delta_kw);
            } /* else its events, or NULL: its error */
        }
        else {
            *result = PyObject_VectorcallMethod(self->s_delta, call, 5, self->delta_kw);
        }
    }
    else {
        PyObject *call[9] = {engine, inst, symbol, bids, asks, event_time, receive_time, seq,
                             checksum};
        *result = PyObject_VectorcallMethod(self->s_snap_m, call,
                                            5,
                                            self->snapshot_kw);
    }
    Py_DECREF(engine);
    Py_DECREF(symbol);
    return 1;
}

static PyObject *
Fast_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames_)
{
    Fast *self = (Fast *)op;
    if (self->cache == NULL) { /* cleared by the garbage collector */
        PyErr_SetString(PyExc_RuntimeError, "Fast: used after being cleared");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames_ != NULL) {
        PyErr_SetString(PyExc_TypeError, "Fast(frame, receive_time) takes 2 arguments");
        return NULL;
    }
    self->frame = args[0];
    PyObject *out = parse(self, args[0], args[1]);
    if (out == NULL) {
        return NULL;
    }
    if (out == Py_None) {
        if (self->fallback == Py_None) {
            return out;
        }
        Py_DECREF(out);
        return PyObject_Vectorcall(self->fallback, args, 2, NULL);
    }
    if (PyTuple_CheckExact(out) && self->engines != NULL) {
        PyObject *events;
        if (book_direct(self, out, args[1], &events)) {
            Py_DECREF(out);
            return events;
        }
    }
    if (PyTuple_CheckExact(out) && materialise(self, out) < 0) { /* before Python sees it */
        Py_DECREF(out);
        return NULL;
    }
    if (PyTuple_CheckExact(out) && self->on_book != Py_None) {
        PyObject *book_args[5] = {PyTuple_GET_ITEM(out, 0), PyTuple_GET_ITEM(out, 1),
                                  PyTuple_GET_ITEM(out, 2), PyTuple_GET_ITEM(out, 3), args[1]};
        PyObject *events = PyObject_Vectorcall(self->on_book, book_args, 5, NULL);
        Py_DECREF(out);
        return events;
    }
    return out;
}

PyDoc_STRVAR(Fast_doc,
"Fast(venue, ticker_type, trade_type, decimal_cache, capacity, symbols, symbol_fn, decimal,\n"
"     book_channels, fallback=None, on_book=None, exact=None)\n\n"
"Called as fast(frame, receive_time) (frame: str or bytes): a list of Ticker/Trade events\n"
"for a tickers/trades push; for a book push on_book(channel, arg_inst_id, action, items,\n"
"receive_time) (items: (event_time, bids, asks, checksum, seq_id, prev_seq_id, inst_id),\n"
"levels (price, size) string tuples), or that tuple without on_book; for any other frame\n"
"fallback(frame, receive_time), or None without fallback. exact: a create_decimal of a\n"
"context with MAX_PREC, MAX_EMAX and MIN_EMIN, used instead of decimal for texts of at\n"
"most 32 characters without an exponent.");

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed_okx._cokx.Fast",
    .tp_basicsize = sizeof(Fast),
    .tp_dealloc = (destructor)Fast_dealloc,
    .tp_vectorcall_offset = offsetof(Fast, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Fast_traverse,
    .tp_clear = (inquiry)Fast_clear,
    .tp_doc = Fast_doc,
    .tp_methods = Fast_methods,
    .tp_new = Fast_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cokx", "C fast path of the OKX normaliser (optional).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cokx(void)
{
    for (int i = 0; i < 0x20; i++) {
        STOP[i] = 1;
    }
    STOP['"'] = 1;
    STOP['\\'] = 1;
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    if (PyType_Ready(&FastType) < 0) {
        return NULL;
    }
    /* imported first: PyCapsule_Import only reads attributes below the top package */
    PyObject *cbook_module = PyImport_ImportModule("marketfeed._cbook");
    Py_XDECREF(cbook_module);
    CBOOK = cbook_module == NULL ? NULL : PyCapsule_Import("marketfeed._cbook._C_API", 0);
    if (CBOOK == NULL || CBOOK->version < 1) { /* fields are only ever appended */
        PyErr_Clear(); /* no (or another) core C extension: the Decimal type builds them all */
        CBOOK = NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&FastType);
    if (PyModule_AddObject(m, "Fast", (PyObject *)&FastType) < 0) {
        Py_DECREF(&FastType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "FAST_DECIMAL",
                              CBOOK != NULL && CBOOK->decimal_type != NULL ? Py_True
                                                                          : Py_False) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

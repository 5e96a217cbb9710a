/* Optional C fast path of the Upbit normaliser (marketfeed_upbit._cupbit).
 *
 * Book(...)(frame, receive_time) reads one Upbit orderbook frame (SIMPLE or DEFAULT
 * format, text or binary) and returns a list with one BookSnapshot, built exactly as the
 * Python handlers in _normalise.py build it:
 *
 *   - the frame is parsed in one pass: the tag must be "orderbook", code, timestamp and
 *     both totals present once each, the unit list a non-empty list of flat objects;
 *   - each unit's text (between its braces) is looked up in this reader's unit index (its
 *     own cache: the Python path keeps its levels in the session's UnitCache, which this
 *     code only reads the `_capacity` of). A miss parses the unit here (exactly the four
 *     fields, plain non-negative JSON numbers, each once) into the levels
 *     UnitCache.__missing__ makes of it, each number Decimal(text) (what msgspec's
 *     float_hook gets and the UnitCache's `numbers` makes of it; kept in a bounded table of
 *     number texts; a plain text built by the core's _cbook through its _C_API capsule, an
 *     equal Decimal of the same digits and exponent, when the core has its fast path:
 *     FAST_DECIMAL), and keeps them in the index, emptied once it holds `_capacity` units;
 *   - totals are Decimal(text) (through the same number table), as msgspec decodes a Decimal
 *     field; the event time is the UTC datetime of the epoch milliseconds
 *     (== datetime.fromtimestamp(ms / 1000, UTC));
 *   - the market is resolved through the handler's `markets` dict, or `market(code,
 *     receive_time)` on its first frame (which queues the "active" status), at the same
 *     point as the Python path.
 *
 * Anything else returns None and the normaliser decodes the frame the Python way (which
 * gives the events or raises the error): escapes in strings, a minus sign, whitespace
 * inside a unit that misses the cache, unknown keys holding objects or lists, duplicate
 * keys, an empty unit list, a crossed book, any exception from a callback. Nothing done
 * before falling back is visible in the events: index entries hold the values the Python
 * path makes of the same text.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define MAX_UNITS 64

#define MAX_NUMBER 64

/* ------------------------------------------------------------------ parser */

typedef struct {
    const char *p;
    const char *end;
} Cur;

static inline void
ws(Cur *c)
{
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

/* A string without escapes or control characters: *s, *n its content. */
static inline int
str_raw(Cur *c, const char **s, Py_ssize_t *n)
{
    ws(c);
    if (c->p >= c->end || *c->p != '"') {
        return 0;
    }
    const char *start = ++c->p;
    const char *q = start;
    while (q < c->end && *q != '"') {
        if (*q == '\\' || (unsigned char)*q < 0x20) {
            return 0;
        }
        q++;
    }
    if (q >= c->end) {
        return 0;
    }
    *s = start;
    *n = q - start;
    c->p = q + 1;
    return 1;
}

/* A JSON number without a sign: *s, *n its text, *integer when it has neither a fraction
 * nor an exponent. 0 for anything else (a minus sign included: left to Python). */
static inline int
number(Cur *c, const char **s, Py_ssize_t *n, int *integer)
{
    ws(c);
    const char *p = c->p, *end = c->end, *start = p;
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
    int plain = 1;
    if (p < end && *p == '.') {
        p++;
        plain = 0;
        if (p >= end || *p < '0' || *p > '9') {
            return 0;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        plain = 0;
        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }
        if (p >= end || *p < '0' || *p > '9') {
            return 0;
        }
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }
    if (p - start > MAX_NUMBER) {
        return 0;
    }
    /* the number must end here: a following digit or letter is invalid JSON */
    if (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E')) {
        return 0;
    }
    *s = start;
    *n = p - start;
    *integer = plain;
    c->p = p;
    return 1;
}

/* A scalar value of a key the fast path does not use (msgspec ignores unknown keys): a
 * string, a number (signed too), true, false or null. Objects and lists: 0. */
static int
skip_scalar(Cur *c)
{
    const char *s;
    Py_ssize_t n;
    int integer;
    ws(c);
    if (c->p >= c->end) {
        return 0;
    }
    char ch = *c->p;
    if (ch == '"') {
        return str_raw(c, &s, &n);
    }
    if (ch == '-') {
        c->p++;
        return number(c, &s, &n, &integer);
    }
    if (ch >= '0' && ch <= '9') {
        return number(c, &s, &n, &integer);
    }
    if (c->end - c->p >= 4 && (memcmp(c->p, "true", 4) == 0 || memcmp(c->p, "null", 4) == 0)) {
        c->p += 4;
        return 1;
    }
    if (c->end - c->p >= 5 && memcmp(c->p, "false", 5) == 0) {
        c->p += 5;
        return 1;
    }
    return 0;
}

/* Whether s[:n] is `name` (its length `len` >= 1): the first byte compared inline, so most
 * other keys of the same length cost no memcmp call. */
static inline int
key_is(const char *s, Py_ssize_t n, const char *name, Py_ssize_t len)
{
    return n == len && s[0] == name[0] && memcmp(s, name, (size_t)len) == 0;
}

/* ------------------------------------------------------------------ names */

enum { K_TY, K_CD, K_TMS, K_TAS, K_TBS, K_OBU, K_ST, K_COUNT };
enum { U_AP, U_BP, U_AS, U_BS, U_COUNT };

typedef struct {
    const char *frame[K_COUNT];
    const char *unit[U_COUNT];
} Names;

static const Names NAMES[2] = {
    {{"ty", "cd", "tms", "tas", "tbs", "obu", "st"}, {"ap", "bp", "as", "bs"}},
    {{"type", "code", "timestamp", "total_ask_size", "total_bid_size", "orderbook_units",
      "stream_type"},
     {"ask_price", "bid_price", "ask_size", "bid_size"}},
};

/* ------------------------------------------------------------------ unit index */

typedef struct {
    uint64_t hash;
    char *key; /* NULL: empty slot */
    Py_ssize_t len;
    PyObject *ask; /* level tuple or None */
    PyObject *bid;
} Slot;

typedef struct {
    Slot *slots;  /* NULL: no table yet */
    size_t mask;  /* slots - 1 (a power of two) */
    size_t used;
} Table;

#define NUMBERS_MAX 65536

/* A hash of s[:n] for the tables above (entries are compared in full, so this only spreads
 * them): 8-byte words, the last one ending at the last byte (overlapping the one before),
 * and for texts under 8 bytes two overlapping 4-byte words or three bytes. Fixed-size loads
 * only: a variable-length memcpy of the tail cost more than the rest of the hash. */
static inline uint64_t
hash_bytes(const char *p, Py_ssize_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    const char *end = p + n;
    uint64_t w = 0;
    if (n >= 8) {
        while (end - p > 8) {
            memcpy(&w, p, 8);
            h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
            h ^= h >> 32;
            p += 8;
        }
        memcpy(&w, end - 8, 8);
    }
    else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, end - 4, 4);
        w = ((uint64_t)a << 32) | b;
    }
    else if (n > 0) {
        w = (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[n / 2] << 8 |
            (uint64_t)(unsigned char)p[n - 1] << 16;
    }
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    return h;
}

/* Market code texts seen lately (direct-mapped by hash): the same str object again for
 * the same text, so a frame's code costs no decode and its dict lookups no hashing. Exact
 * ASCII strs only, which take part in no reference cycle. */
#define CODE_SLOTS 16

static PyObject *
code_text(PyObject **codes, const char *s, Py_ssize_t n)
{
    if (n < 1 || n > 32) {
        return PyUnicode_DecodeUTF8(s, n, NULL);
    }
    PyObject **slot = &codes[hash_bytes(s, n) & (CODE_SLOTS - 1)];
    PyObject *u = *slot;
    if (u != NULL && PyUnicode_GET_LENGTH(u) == n &&
        memcmp(PyUnicode_DATA(u), s, (size_t)n) == 0) {
        return Py_NewRef(u);
    }
    u = PyUnicode_DecodeUTF8(s, n, NULL);
    if (u != NULL && PyUnicode_IS_COMPACT_ASCII(u)) {
        Py_XSETREF(*slot, Py_NewRef(u));
    }
    return u;
}

static void
codes_free(PyObject **codes)
{
    for (int i = 0; i < CODE_SLOTS; i++) {
        Py_CLEAR(codes[i]);
    }
}

/* Lengths of the names above, set in PyInit__cupbit: [format][key]. */
static Py_ssize_t FRAME_LEN[2][K_COUNT];
static Py_ssize_t UNIT_LEN[2][U_COUNT];

/* ------------------------------------------------------------------ the types */

/* The unit index: unit text -> (ask, bid), the C readers' own cache of the levels they
 * parsed (the Python path keeps its own in the session's UnitCache: writing every new unit
 * there too, with a bytes key, a SipHash and two dict stores, cost ~10 % of a fresh frame),
 * and the number table. Kept in the session (UpbitSession.indexes), so a reconnect's new
 * readers start warm; bounded like the UnitCache: emptied once it holds `_capacity` units. */
typedef struct {
    PyObject_HEAD
    Table ix;
    Table nums;         /* number text -> Decimal (values in `ask`), at most NUMBERS_MAX */
    Py_ssize_t emptied; /* how often `ix` was emptied at capacity */
} UnitIndex;

static PyTypeObject UnitIndexType;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int fmt; /* 0 SIMPLE, 1 DEFAULT */
    PyObject *venue;
    PyObject *book_type;  /* marketfeed.BookSnapshot */
    PyObject *units;      /* the session's UnitCache: only its `_capacity` is read here */
    PyObject *markets;    /* code -> (symbol, native code) */
    PyObject *market_fn;  /* market(code, receive_time) */
    PyObject *decimal;    /* decimal.Decimal */
    PyObject *kw;         /* kwnames of BookSnapshot(...) */
    PyObject *s_capacity;
    UnitIndex *index; /* the session's unit index of this format */
    Py_ssize_t cap;   /* the UnitCache's `_capacity` (-1: not read yet) */
    PyObject *codes[CODE_SLOTS];
} Book;

static int
Book_traverse(Book *self, visitproc visit, void *arg)
{
    Py_VISIT(self->venue);
    Py_VISIT(self->book_type);
    Py_VISIT(self->units);
    Py_VISIT(self->markets);
    Py_VISIT(self->market_fn);
    Py_VISIT(self->decimal);
    Py_VISIT(self->index);
    return 0;
}

static void
index_clear(Slot *slots, size_t mask)
{
    if (slots == NULL) {
        return;
    }
    for (size_t i = 0; i <= mask; i++) {
        if (slots[i].key != NULL) {
            PyMem_Free(slots[i].key);
            slots[i].key = NULL;
            Py_CLEAR(slots[i].ask);
            Py_XSETREF(slots[i].bid, NULL);
        }
    }
}

static void
table_free(Table *t)
{
    Slot *slots = t->slots;
    size_t mask = t->mask;
    t->slots = NULL;
    t->mask = 0;
    t->used = 0;
    index_clear(slots, mask); /* may run Python code (decref): the table is detached first */
    PyMem_Free(slots);
}

/* Empty a table, keeping its size. */
static void
table_empty(Table *t)
{
    Slot *slots = t->slots;
    t->used = 0;
    if (slots != NULL) {
        t->slots = NULL; /* detached while values are released (a decref may run Python) */
        index_clear(slots, t->mask);
        t->slots = slots;
    }
}

static int
UnitIndex_traverse(UnitIndex *self, visitproc visit, void *arg)
{
    for (size_t i = 0; self->ix.slots != NULL && i <= self->ix.mask; i++) {
        Py_VISIT(self->ix.slots[i].ask);
        Py_VISIT(self->ix.slots[i].bid);
    }
    return 0; /* the number table holds Decimals only: no cycle */
}

static int
UnitIndex_clear(UnitIndex *self)
{
    table_free(&self->ix);
    table_free(&self->nums);
    return 0;
}

static void
UnitIndex_dealloc(UnitIndex *self)
{
    PyObject_GC_UnTrack(self);
    UnitIndex_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
UnitIndex_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "UnitIndex() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static PyObject *
UnitIndex_get_cached(UnitIndex *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->ix.used);
}

static PyObject *
UnitIndex_get_emptied(UnitIndex *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->emptied);
}

static PyGetSetDef UnitIndex_getset[] = {
    {"cached", (getter)UnitIndex_get_cached, NULL, "Units in the index.", NULL},
    {"emptied", (getter)UnitIndex_get_emptied, NULL, "Times it was emptied at capacity.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(UnitIndex_doc,
"UnitIndex()\n\n"
"The orderbook readers' unit index and number table, kept in the session so a reconnect's\n"
"readers start warm. `cached`: units held; `emptied`: times emptied at capacity.");

static PyTypeObject UnitIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed_upbit._cupbit.UnitIndex",
    .tp_basicsize = sizeof(UnitIndex),
    .tp_dealloc = (destructor)UnitIndex_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)UnitIndex_traverse,
    .tp_clear = (inquiry)UnitIndex_clear,
    .tp_doc = UnitIndex_doc,
    .tp_getset = UnitIndex_getset,
    .tp_new = UnitIndex_new,
};

static int
Book_clear(Book *self)
{
    Py_CLEAR(self->index);
    Py_CLEAR(self->venue);
    Py_CLEAR(self->book_type);
    Py_CLEAR(self->units);
    Py_CLEAR(self->markets);
    Py_CLEAR(self->market_fn);
    Py_CLEAR(self->decimal);
    return 0;
}

static void
Book_dealloc(Book *self)
{
    PyObject_GC_UnTrack(self);
    Book_clear(self);
    codes_free(self->codes);
    Py_XDECREF(self->kw);
    Py_XDECREF(self->s_capacity);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static const char *const BOOK_KW[] = {
    "venue", "symbol", "native_symbol", "event_time", "receive_time", "bids", "asks", "depth",
    "total_bid_size", "total_ask_size"};
#define BOOK_NKW 10

static PyObject *Book_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                 PyObject *kwnames);

static PyObject *
Book_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    int fmt;
    PyObject *venue, *book_type, *units, *index, *markets, *market_fn, *decimal;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Book() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "pUOO!O!O!OO:Book", &fmt, &venue, &book_type, &PyDict_Type,
                          &units, &UnitIndexType, &index, &PyDict_Type, &markets, &market_fn,
                          &decimal)) {
        return NULL;
    }
    Book *self = (Book *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fmt = fmt;
    self->venue = Py_NewRef(venue);
    self->book_type = Py_NewRef(book_type);
    self->units = Py_NewRef(units);
    self->index = (UnitIndex *)Py_NewRef(index);
    self->cap = -1;
    self->markets = Py_NewRef(markets);
    self->market_fn = Py_NewRef(market_fn);
    self->decimal = Py_NewRef(decimal);
    self->vectorcall = Book_vectorcall;
    self->kw = PyTuple_New(BOOK_NKW);
    if (self->kw != NULL) {
        for (Py_ssize_t i = 0; i < BOOK_NKW; i++) {
            PyObject *s = PyUnicode_InternFromString(BOOK_KW[i]);
            if (s == NULL) {
                Py_DECREF(self);
                return NULL;
            }
            PyTuple_SET_ITEM(self->kw, i, s);
        }
    }
    self->s_capacity = PyUnicode_InternFromString("_capacity");
    if (self->kw == NULL || self->s_capacity == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* ------------------------------------------------------------------ helpers */

/* UTC datetime of epoch milliseconds (== datetime.fromtimestamp(ms / 1000, UTC)). */
static PyObject *
ms_datetime(long long ms)
{
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
    return PyDateTimeAPI->DateTime_FromDateAndTime(
        (int)y, (int)m, (int)d, (int)(rem / 3600000LL), (int)(rem / 60000LL % 60),
        (int)(rem / 1000LL % 60), (int)(rem % 1000LL) * 1000, PyDateTime_TimeZone_UTC,
        PyDateTimeAPI->DateTimeType);
}

/* marketfeed._cbook's C API (capsule marketfeed._cbook._C_API; layout kept in step with
 * cbook_api in core/src/marketfeed/_cbook.c, as marketfeed-okx's _cokx.c reads it):
 * Decimal objects of plain texts (digits, at most one '.', at most 19 digits) built without
 * calling the type, when the core's layout check accepted _decimal. NULL (core not built or
 * older): every Decimal comes from the type, as before. Same digits, same exponent, so the
 * same Decimal either way; Upbit's exponent forms (2.2E-7, 0E-8) always go to the type. */
typedef struct {
    int version;
    PyTypeObject *decimal_type;
    PyObject *(*decimal_from_ascii)(const char *s, Py_ssize_t n);
    /* version >= 2: BookEngine.delta's common case (10 arguments), None to hand back */
    PyObject *(*engine_delta)(PyObject *const *args);
} cbook_api;

static const cbook_api *CBOOK;

/* fn(text) of a number text (fn: decimal.Decimal): built by the core for a plain text when
 * fn is the type it builds, else by calling fn. */
static PyObject *
decimal_of(PyObject *fn, const char *s, Py_ssize_t n)
{
    if (CBOOK != NULL && CBOOK->decimal_type != NULL && fn == (PyObject *)CBOOK->decimal_type) {
        PyObject *d = CBOOK->decimal_from_ascii(s, n); /* == Decimal(s[:n]) */
        if (d != NULL || PyErr_Occurred()) {
            return d;
        }
    }
    PyObject *t = PyUnicode_FromStringAndSize(s, n);
    if (t == NULL) {
        return NULL;
    }
    PyObject *d = PyObject_CallOneArg(fn, t);
    Py_DECREF(t);
    return d;
}

static inline Slot *index_slot(Table *t, uint64_t h, const char *s, Py_ssize_t n);
static int index_put(Table *t, uint64_t h, const char *s, Py_ssize_t n, PyObject *ask,
                     PyObject *bid);

/* Decimal(text) of a number text in a unit, through the number table (a new reference). */
static PyObject *
number_of(Book *self, const char *s, Py_ssize_t n)
{
    uint64_t h = hash_bytes(s, n);
    Table *nums = &self->index->nums;
    if (nums->slots != NULL) {
        Slot *slot = index_slot(nums, h, s, n);
        if (slot->key != NULL) {
            return Py_NewRef(slot->ask);
        }
    }
    PyObject *d = decimal_of(self->decimal, s, n);
    if (d == NULL) {
        return NULL;
    }
    if (nums->used >= NUMBERS_MAX) {
        table_empty(nums);
    }
    if (!index_put(nums, h, s, n, d, NULL)) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

/* A level (price, size): a tuple of two Decimals, which can be in no reference cycle, so it
 * is not tracked by the garbage collector (as CPython untracks such tuples itself later). */
static PyObject *
level(PyObject *price, PyObject *size)
{
    PyObject *t = PyTuple_New(2);
    if (t == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, Py_NewRef(price));
    PyTuple_SET_ITEM(t, 1, Py_NewRef(size));
    PyObject_GC_UnTrack(t);
    return t;
}

/* Parse a missed unit (the text between its braces, s[:n]) into its levels as
 * UnitCache.__missing__ does: *ask and *bid a level tuple or None (new references). 1 done,
 * 0 not a unit this code takes (nothing made), -1 an exception (set). */
static int
unit_levels(Book *self, const char *s0, Py_ssize_t n0, PyObject **ask, PyObject **bid)
{
    const Names *names = &NAMES[self->fmt];
    Cur c = {s0, s0 + n0};
    const char *num[U_COUNT] = {NULL};
    Py_ssize_t len[U_COUNT] = {0};
    for (int i = 0; i < U_COUNT; i++) {
        const char *s;
        Py_ssize_t n;
        int integer, k;
        if (!str_raw(&c, &s, &n) || !expect(&c, ':')) {
            return 0;
        }
        for (k = 0; k < U_COUNT; k++) {
            if (key_is(s, n, names->unit[k], UNIT_LEN[self->fmt][k])) {
                break;
            }
        }
        if (k == U_COUNT || num[k] != NULL || !number(&c, &num[k], &len[k], &integer)) {
            return 0;
        }
        if (i < U_COUNT - 1 && !expect(&c, ',')) {
            return 0; /* after the last field only whitespace may follow (checked below) */
        }
    }
    ws(&c);
    if (c.p != c.end) {
        return 0;
    }
    PyObject *v[U_COUNT] = {NULL};
    int truth[U_COUNT];
    for (int k = 0; k < U_COUNT; k++) {
        v[k] = number_of(self, num[k], len[k]);
        if (v[k] == NULL || (truth[k] = PyObject_IsTrue(v[k])) < 0) {
            for (int j = 0; j <= k; j++) {
                Py_XDECREF(v[j]);
            }
            return -1;
        }
    }
    *ask = truth[U_AP] && truth[U_AS] ? level(v[U_AP], v[U_AS]) : Py_NewRef(Py_None);
    *bid = truth[U_BP] && truth[U_BS] ? level(v[U_BP], v[U_BS]) : Py_NewRef(Py_None);
    for (int k = 0; k < U_COUNT; k++) {
        Py_DECREF(v[k]);
    }
    if (*ask == NULL || *bid == NULL) {
        Py_CLEAR(*ask);
        Py_CLEAR(*bid);
        return -1;
    }
    return 1;
}

/* The slot of `s[:n]` (hash h): its entry, or the empty slot where it would go. */
static inline Slot *
index_slot(Table *t, uint64_t h, const char *s, Py_ssize_t n)
{
    size_t i = (size_t)h & t->mask;
    for (;;) {
        Slot *slot = &t->slots[i];
        if (slot->key == NULL ||
            (slot->hash == h && slot->len == n && memcmp(slot->key, s, (size_t)n) == 0)) {
            return slot;
        }
        i = (i + 1) & t->mask;
    }
}

/* Read the UnitCache's `_capacity` (the bound of this reader's index too). 0 on error. */
static int
read_capacity(Book *self)
{
    PyObject *cap_obj = PyObject_GetAttr(self->units, self->s_capacity);
    if (cap_obj == NULL) {
        return 0;
    }
    self->cap = PyLong_AsSsize_t(cap_obj);
    Py_DECREF(cap_obj);
    return !(self->cap == -1 && PyErr_Occurred());
}

/* Remember `s[:n]` -> (ask, bid) (new references taken). 0 on error (nothing stored). */
static int
index_put(Table *t, uint64_t h, const char *s, Py_ssize_t n, PyObject *ask, PyObject *bid)
{
    if (t->slots == NULL || (t->used + 1) * 2 > t->mask + 1) {
        size_t size = t->slots == NULL ? 256 : (t->mask + 1) * 2;
        Slot *fresh = PyMem_Calloc(size, sizeof(Slot));
        if (fresh == NULL) {
            PyErr_NoMemory();
            return 0;
        }
        Slot *old = t->slots;
        size_t old_mask = t->mask;
        t->slots = fresh;
        t->mask = size - 1;
        for (size_t i = 0; old != NULL && i <= old_mask; i++) {
            if (old[i].key != NULL) {
                *index_slot(t, old[i].hash, old[i].key, old[i].len) = old[i];
            }
        }
        PyMem_Free(old);
    }
    Slot *slot = index_slot(t, h, s, n);
    if (slot->key != NULL) {
        return 1; /* already there */
    }
    char *key = PyMem_Malloc((size_t)n + 1);
    if (key == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    memcpy(key, s, (size_t)n);
    slot->hash = h;
    slot->key = key;
    slot->len = n;
    slot->ask = Py_NewRef(ask);
    slot->bid = Py_XNewRef(bid);
    t->used++;
    return 1;
}

/* ------------------------------------------------------------------ one frame */

typedef struct {
    const char *s;
    Py_ssize_t n;
} Span;

/* The UTF-8 text of a frame (bytes or str). 0: neither (or not encodable). */
static int
frame_text(PyObject *frame, const char **buf, Py_ssize_t *size)
{
    if (PyBytes_CheckExact(frame)) {
        *buf = PyBytes_AS_STRING(frame);
        *size = PyBytes_GET_SIZE(frame);
        return 1;
    }
    if (PyUnicode_CheckExact(frame)) {
        *buf = PyUnicode_AsUTF8AndSize(frame, size);
        if (*buf == NULL) {
            PyErr_Clear();
            return 0;
        }
        return 1;
    }
    return 0;
}

/* An object member's key and its ':': the index of the key among names[:count] (count for
 * another key), recorded in *seen; -1 on a parse error or a repeated known key. */
static int
member_key(Cur *c, const char *const *names, const Py_ssize_t *lens, int count,
           unsigned *seen)
{
    const char *s;
    Py_ssize_t n;
    if (!str_raw(c, &s, &n) || !expect(c, ':')) {
        return -1;
    }
    int k;
    for (k = 0; k < count; k++) {
        if (key_is(s, n, names[k], lens[k])) {
            break;
        }
    }
    if (k < count) {
        if (*seen & (1u << k)) {
            return -1; /* a duplicate key: msgspec keeps the last, left to it */
        }
        *seen |= 1u << k;
    }
    return k;
}

/* After a member's value: 1 another member follows, 0 the object closed, -1 neither. */
static inline int
member_end(Cur *c)
{
    if (expect(c, ',')) {
        return 1;
    }
    return expect(c, '}') ? 0 : -1;
}

/* A JSON null or a string without escapes (its text unused). 0: neither. */
static inline int
null_or_str(Cur *c)
{
    ws(c);
    if (c->end - c->p >= 4 && memcmp(c->p, "null", 4) == 0) {
        c->p += 4;
        return 1;
    }
    const char *s;
    Py_ssize_t n;
    return str_raw(c, &s, &n);
}

/* Whether only whitespace follows the closed object and every `required` key was seen. */
static inline int
object_done(Cur *c, unsigned seen, unsigned required)
{
    ws(c);
    return c->p == c->end && (seen & required) == required;
}

/* The frame's events (a new list), Py_None (new reference: not taken) or NULL with an
 * exception set (only for errors the caller must not swallow: none today). */
static PyObject *
book(Book *self, PyObject *frame, PyObject *receive_time)
{
    const char *buf;
    Py_ssize_t size;
    if (!frame_text(frame, &buf, &size)) {
        Py_RETURN_NONE;
    }
    const Names *names = &NAMES[self->fmt];
    const Py_ssize_t *klen = FRAME_LEN[self->fmt];
    Span field[K_COUNT] = {{NULL, 0}};
    Span unit[MAX_UNITS];
    Py_ssize_t nunits = 0;
    long long ms = 0;
    unsigned seen = 0;
    Cur c = {buf, buf + size};

    /* -- parse: the whole frame, nothing built yet */
    if (!expect(&c, '{')) {
        Py_RETURN_NONE;
    }
    for (;;) {
        const char *s;
        Py_ssize_t n;
        int integer;
        int k = member_key(&c, names->frame, klen, K_COUNT, &seen);
        if (k < 0) {
            Py_RETURN_NONE;
        }
        switch (k) {
            case K_TY:
                if (!str_raw(&c, &s, &n) || !key_is(s, n, "orderbook", 9)) {
                    Py_RETURN_NONE;
                }
                break;
            case K_CD:
                if (!str_raw(&c, &field[K_CD].s, &field[K_CD].n)) {
                    Py_RETURN_NONE;
                }
                break;
            case K_TMS:
                if (!number(&c, &s, &n, &integer) || !integer || n > 15) {
                    Py_RETURN_NONE; /* up to 15 digits: within datetime's range below */
                }
                ms = 0;
                for (Py_ssize_t i = 0; i < n; i++) {
                    ms = ms * 10 + (s[i] - '0');
                }
                break;
            case K_TAS:
            case K_TBS:
                if (!number(&c, &field[k].s, &field[k].n, &integer)) {
                    Py_RETURN_NONE;
                }
                break;
            case K_OBU:
                if (!expect(&c, '[')) {
                    Py_RETURN_NONE;
                }
                for (;;) {
                    if (!expect(&c, '{') || nunits == MAX_UNITS) {
                        Py_RETURN_NONE; /* an empty list too: left to Python */
                    }
                    /* The unit's text: up to the first '}'. A text cut at a '}' inside
                     * a string or a nested value is never a unit's whole text (its quotes
                     * or brackets do not balance), so it is never in the index (which holds
                     * validated unit texts only) and unit_levels rejects it: the frame then
                     * goes to Python. */
                    const char *start = c.p;
                    const char *q = memchr(start, '}', (size_t)(c.end - start));
                    if (q == NULL) {
                        Py_RETURN_NONE;
                    }
                    unit[nunits].s = start;
                    unit[nunits].n = q - start;
                    nunits++;
                    c.p = q + 1;
                    if (expect(&c, ',')) {
                        continue;
                    }
                    if (expect(&c, ']')) {
                        break;
                    }
                    Py_RETURN_NONE;
                }
                break;
            case K_ST:
                if (!null_or_str(&c)) {
                    Py_RETURN_NONE;
                }
                break;
            default:
                if (!skip_scalar(&c)) {
                    Py_RETURN_NONE;
                }
        }
        int more = member_end(&c);
        if (more < 0) {
            Py_RETURN_NONE;
        }
        if (!more) {
            break;
        }
    }
    const unsigned required = (1u << K_TY) | (1u << K_CD) | (1u << K_TMS) | (1u << K_TAS) |
                              (1u << K_TBS) | (1u << K_OBU);
    if (!object_done(&c, seen, required)) {
        Py_RETURN_NONE;
    }

    /* -- levels: each unit text through the cache (a miss parsed and stored) */
    PyObject *asks[MAX_UNITS], *bids[MAX_UNITS];
    Py_ssize_t na = 0, nb = 0;
    PyObject *code = NULL, *tas = NULL, *tbs = NULL, *when = NULL, *ask_t = NULL, *bid_t = NULL;
    PyObject *depth = NULL, *event = NULL, *out = NULL;
    for (Py_ssize_t i = 0; i < nunits; i++) {
        uint64_t h = hash_bytes(unit[i].s, unit[i].n);
        Table *ix = &self->index->ix;
        if (ix->slots != NULL) {
            Slot *slot = index_slot(ix, h, unit[i].s, unit[i].n);
            if (slot->key != NULL) { /* the usual case: a unit seen before */
                if (slot->ask != Py_None) {
                    asks[na++] = Py_NewRef(slot->ask);
                }
                if (slot->bid != Py_None) {
                    bids[nb++] = Py_NewRef(slot->bid);
                }
                continue;
            }
        }
        PyObject *ask, *bid;
        if (unit_levels(self, unit[i].s, unit[i].n, &ask, &bid) <= 0) {
            goto fallback;
        }
        /* the capacity is read on the first miss and again whenever the index is full */
        if ((self->cap < 0 || (Py_ssize_t)ix->used >= self->cap) && !read_capacity(self)) {
            Py_DECREF(ask);
            Py_DECREF(bid);
            goto fallback;
        }
        if ((Py_ssize_t)ix->used >= self->cap) {
            table_empty(ix); /* bounded as the UnitCache is */
            self->index->emptied++;
        }
        int ok = index_put(ix, h, unit[i].s, unit[i].n, ask, bid);
        if (ask != Py_None) {
            asks[na++] = Py_NewRef(ask);
        }
        if (bid != Py_None) {
            bids[nb++] = Py_NewRef(bid);
        }
        Py_DECREF(ask);
        Py_DECREF(bid);
        if (!ok) {
            goto fallback;
        }
    }

    /* -- the event */
    code = code_text(self->codes, field[K_CD].s, field[K_CD].n);
    /* through the number table too: 41 % of the capture's totals repeat a text seen before */
    tas = number_of(self, field[K_TAS].s, field[K_TAS].n);
    tbs = number_of(self, field[K_TBS].s, field[K_TBS].n);
    when = ms_datetime(ms);
    ask_t = PyTuple_New(na);
    bid_t = PyTuple_New(nb);
    depth = PyLong_FromSsize_t(na > nb ? na : nb);
    if (code == NULL || tas == NULL || tbs == NULL || when == NULL || ask_t == NULL ||
        bid_t == NULL || depth == NULL) {
        goto fallback;
    }
    for (Py_ssize_t i = 0; i < na; i++) {
        PyTuple_SET_ITEM(ask_t, i, asks[i]);
    }
    na = 0;
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyTuple_SET_ITEM(bid_t, i, bids[i]);
    }
    nb = 0;
    PyObject *sym = PyDict_GetItemWithError(self->markets, code);
    if (sym == NULL) {
        if (PyErr_Occurred()) {
            goto fallback;
        }
        PyObject *call[2] = {code, receive_time};
        sym = PyObject_Vectorcall(self->market_fn, call, 2, NULL);
    }
    else {
        Py_INCREF(sym);
    }
    if (sym == NULL) {
        goto fallback; /* the Python path raises the same error */
    }
    if (!PyTuple_CheckExact(sym) || PyTuple_GET_SIZE(sym) != 2) {
        Py_DECREF(sym);
        goto fallback;
    }
    if (PyTuple_GET_SIZE(ask_t) && PyTuple_GET_SIZE(bid_t)) {
        int crossed = PyObject_RichCompareBool(
            PyTuple_GET_ITEM(PyTuple_GET_ITEM(bid_t, 0), 0),
            PyTuple_GET_ITEM(PyTuple_GET_ITEM(ask_t, 0), 0), Py_GE);
        if (crossed != 0) {
            Py_DECREF(sym);
            goto fallback; /* crossed (or not comparable): the Python path raises */
        }
    }
    PyObject *args[BOOK_NKW] = {self->venue, PyTuple_GET_ITEM(sym, 0), PyTuple_GET_ITEM(sym, 1),
                                when,        receive_time,             bid_t,
                                ask_t,       depth,                    tbs,
                                tas};
    event = PyObject_Vectorcall(self->book_type, args, 0, self->kw);
    Py_DECREF(sym);
    if (event == NULL) {
        goto fallback;
    }
    out = PyList_New(1);
    if (out == NULL) {
        goto fallback;
    }
    PyList_SET_ITEM(out, 0, event);
    event = NULL;
    goto done;
fallback:
    PyErr_Clear();
    out = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < na; i++) {
        Py_DECREF(asks[i]);
    }
    for (Py_ssize_t i = 0; i < nb; i++) {
        Py_DECREF(bids[i]);
    }
    Py_XDECREF(code);
    Py_XDECREF(tas);
    Py_XDECREF(tbs);
    Py_XDECREF(when);
    Py_XDECREF(ask_t);
    Py_XDECREF(bid_t);
    Py_XDECREF(depth);
    Py_XDECREF(event);
    return out;
}

static PyObject *
Book_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Book *self = (Book *)op;
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Book(frame, receive_time) takes 2 arguments");
        return NULL;
    }
    if (self->units == NULL) { /* cleared by the garbage collector */
        Py_RETURN_NONE;
    }
    return book(self, args[0], args[1]);
}

PyDoc_STRVAR(Book_doc,
"Book(default, venue, book_type, units, index, markets, market, decimal)\n\n"
"Called as book(frame, receive_time) (frame: str or bytes, one Upbit orderbook frame in\n"
"the DEFAULT format if `default` else SIMPLE): a list with one BookSnapshot, or None\n"
"for any frame it does not take (the caller then decodes it the Python way). units: the\n"
"session's UnitCache, whose `_capacity` bounds the unit index `index` (a UnitIndex, the\n"
"session's); markets:\n"
"code -> (symbol, native code); market(code, receive_time): resolves and records a code\n"
"seen for the first time. `cached` is the number of units in the index, `emptied` how\n"
"often it was emptied at capacity.");

static PyObject *
Book_get_cached(Book *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSize_t(self->index == NULL ? 0 : self->index->ix.used);
}

static PyObject *
Book_get_emptied(Book *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->index == NULL ? 0 : self->index->emptied);
}

static PyGetSetDef Book_getset[] = {
    {"cached", (getter)Book_get_cached, NULL, "Units in the index.", NULL},
    {"emptied", (getter)Book_get_emptied, NULL, "Times the index was emptied at capacity.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BookType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed_upbit._cupbit.Book",
    .tp_basicsize = sizeof(Book),
    .tp_dealloc = (destructor)Book_dealloc,
    .tp_vectorcall_offset = offsetof(Book, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Book_traverse,
    .tp_clear = (inquiry)Book_clear,
    .tp_doc = Book_doc,
    .tp_getset = Book_getset,
    .tp_new = Book_new,
};

/* ------------------------------------------------------------------ trades */

/* str(v) of an integer, built from its digits (an ASCII str). New reference. */
static PyObject *
decimal_text(long long v)
{
    char buf[24];
    char *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) {
        *--p = '-';
    }
    return PyUnicode_FromStringAndSize(p, buf + sizeof(buf) - p);
}



enum { T_TY, T_CD, T_TMS, T_TTMS, T_TP, T_TV, T_AB, T_SID, T_ST, T_COUNT };

static const char *const TRADE_NAMES[2][T_COUNT] = {
    {"ty", "cd", "tms", "ttms", "tp", "tv", "ab", "sid", "st"},
    {"type", "code", "timestamp", "trade_timestamp", "trade_price", "trade_volume", "ask_bid",
     "sequential_id", "stream_type"},
};

static const char *const TRADE_KW[] = {
    "venue", "symbol", "native_symbol", "event_time", "receive_time", "trade_id", "price",
    "size", "side", "sequence"};
#define TRADE_NKW 10

static Py_ssize_t TRADE_LEN[2][T_COUNT]; /* set in PyInit__cupbit */

/* Trade times are datetime.fromtimestamp(ms / 1000, UTC) in the Python path: equal to the
 * exact millisecond below this bound (the float's error stays under half a microsecond). */
#define TRADE_MS_MAX 4000000000000LL

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int fmt;
    Py_ssize_t window;
    PyObject *venue;
    PyObject *trade_type; /* marketfeed.Trade */
    PyObject *markets;    /* code -> (symbol, native code) */
    PyObject *ids;        /* code -> (set of ids, deque of ids): the session's dedup */
    PyObject *decimal;
    PyObject *kw;
    PyObject *s_buy, *s_sell, *s_append, *s_popleft;
    long long last_ms;
    PyObject *last_dt;
    PyObject *codes[CODE_SLOTS];
} TradeReader;

static int
Trade_traverse(TradeReader *self, visitproc visit, void *arg)
{
    Py_VISIT(self->venue);
    Py_VISIT(self->trade_type);
    Py_VISIT(self->markets);
    Py_VISIT(self->ids);
    Py_VISIT(self->decimal);
    return 0;
}

static int
Trade_clear(TradeReader *self)
{
    Py_CLEAR(self->venue);
    Py_CLEAR(self->trade_type);
    Py_CLEAR(self->markets);
    Py_CLEAR(self->ids);
    Py_CLEAR(self->decimal);
    return 0;
}

static void
Trade_dealloc(TradeReader *self)
{
    PyObject_GC_UnTrack(self);
    Trade_clear(self);
    codes_free(self->codes);
    Py_XDECREF(self->kw);
    Py_XDECREF(self->s_buy);
    Py_XDECREF(self->s_sell);
    Py_XDECREF(self->s_append);
    Py_XDECREF(self->s_popleft);
    Py_XDECREF(self->last_dt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Trade_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames);

static PyObject *
Trade_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    int fmt;
    Py_ssize_t window;
    PyObject *venue, *trade_type, *markets, *ids, *decimal;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "Trade() takes positional arguments only");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "pUOO!O!nO:Trade", &fmt, &venue, &trade_type, &PyDict_Type,
                          &markets, &PyDict_Type, &ids, &window, &decimal)) {
        return NULL;
    }
    TradeReader *self = (TradeReader *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->fmt = fmt;
    self->window = window;
    self->venue = Py_NewRef(venue);
    self->trade_type = Py_NewRef(trade_type);
    self->markets = Py_NewRef(markets);
    self->ids = Py_NewRef(ids);
    self->decimal = Py_NewRef(decimal);
    self->last_ms = -1;
    self->vectorcall = Trade_vectorcall;
    self->kw = PyTuple_New(TRADE_NKW);
    if (self->kw != NULL) {
        for (Py_ssize_t i = 0; i < TRADE_NKW; i++) {
            PyObject *name = PyUnicode_InternFromString(TRADE_KW[i]);
            if (name == NULL) {
                Py_DECREF(self);
                return NULL;
            }
            PyTuple_SET_ITEM(self->kw, i, name);
        }
    }
    self->s_buy = PyUnicode_InternFromString("buy");
    self->s_sell = PyUnicode_InternFromString("sell");
    self->s_append = PyUnicode_InternFromString("append");
    self->s_popleft = PyUnicode_InternFromString("popleft");
    if (self->kw == NULL || self->s_buy == NULL || self->s_sell == NULL ||
        self->s_append == NULL || self->s_popleft == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* A non-negative JSON integer of at most 18 digits. */
static inline int
integer(Cur *c, long long *out)
{
    const char *s;
    Py_ssize_t n;
    int plain;
    if (!number(c, &s, &n, &plain) || !plain || n > 18) {
        return 0;
    }
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* The frame's events (a new list or the empty tuple for a repeat), or Py_None (not taken:
 * the caller decodes the frame the Python way). Never raises for frame content. */
static PyObject *
trade(TradeReader *self, PyObject *frame, PyObject *receive_time)
{
    const char *buf;
    Py_ssize_t size;
    if (!frame_text(frame, &buf, &size)) {
        Py_RETURN_NONE;
    }
    const char *const *names = TRADE_NAMES[self->fmt];
    Span f[T_COUNT] = {{NULL, 0}};
    long long ttms = 0, sid = 0, tms = 0;
    unsigned seen = 0;
    Cur c = {buf, buf + size};
    if (!expect(&c, '{')) {
        Py_RETURN_NONE;
    }
    for (;;) {
        const char *s;
        Py_ssize_t n;
        int plain;
        int k = member_key(&c, names, TRADE_LEN[self->fmt], T_COUNT, &seen);
        if (k < 0) {
            Py_RETURN_NONE;
        }
        switch (k) {
            case T_TY:
                if (!str_raw(&c, &s, &n) || !key_is(s, n, "trade", 5)) {
                    Py_RETURN_NONE;
                }
                break;
            case T_CD:
            case T_AB:
                if (!str_raw(&c, &f[k].s, &f[k].n)) {
                    Py_RETURN_NONE;
                }
                break;
            case T_TMS:
                if (!integer(&c, &tms)) {
                    Py_RETURN_NONE;
                }
                break;
            case T_TTMS:
                if (!integer(&c, &ttms) || ttms >= TRADE_MS_MAX) {
                    Py_RETURN_NONE;
                }
                break;
            case T_SID:
                if (!integer(&c, &sid)) {
                    Py_RETURN_NONE;
                }
                break;
            case T_TP:
            case T_TV:
                if (!number(&c, &f[k].s, &f[k].n, &plain)) {
                    Py_RETURN_NONE;
                }
                break;
            case T_ST:
                if (!null_or_str(&c)) {
                    Py_RETURN_NONE;
                }
                break;
            default:
                if (!skip_scalar(&c)) {
                    Py_RETURN_NONE;
                }
        }
        int more = member_end(&c);
        if (more < 0) {
            Py_RETURN_NONE;
        }
        if (!more) {
            break;
        }
    }
    if (!object_done(&c, seen, (1u << T_COUNT) - 1 - (1u << T_ST))) {
        Py_RETURN_NONE;
    }
    (void)tms;

    PyObject *code = NULL, *sid_obj = NULL, *price = NULL, *size_obj = NULL, *tid = NULL;
    PyObject *out = NULL, *event = NULL;
    code = code_text(self->codes, f[T_CD].s, f[T_CD].n);
    if (code == NULL) {
        goto fallback;
    }
    PyObject *sym = PyDict_GetItemWithError(self->markets, code);
    PyObject *pair = sym == NULL ? NULL : PyDict_GetItemWithError(self->ids, code);
    if (pair == NULL || !PyTuple_CheckExact(sym) || PyTuple_GET_SIZE(sym) != 2 ||
        !PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PySet_CheckExact(PyTuple_GET_ITEM(pair, 0))) {
        goto fallback; /* a market's first frame (or anything odd): the Python path */
    }
    Py_INCREF(sym);
    Py_INCREF(pair);
    PyObject *ids = PyTuple_GET_ITEM(pair, 0), *order = PyTuple_GET_ITEM(pair, 1);
    sid_obj = PyLong_FromLongLong(sid);
    if (sid_obj == NULL) {
        goto fallback_pair;
    }
    int known = PySet_Contains(ids, sid_obj);
    if (known < 0) {
        goto fallback_pair;
    }
    if (known) { /* a repeat: a snapshot after a reconnect, a replayed segment */
        out = PyTuple_New(0);
        goto done_pair;
    }
    /* everything that can fail for frame content comes before the dedup is updated */
    price = decimal_of(self->decimal, f[T_TP].s, f[T_TP].n);
    size_obj = decimal_of(self->decimal, f[T_TV].s, f[T_TV].n);
    tid = decimal_text(sid); /* == str(sid_obj), without a call into int.__str__ */
    if (price == NULL || size_obj == NULL || tid == NULL) {
        goto fallback_pair;
    }
    if (ttms != self->last_ms || self->last_dt == NULL) {
        PyObject *when = ms_datetime(ttms);
        if (when == NULL) {
            goto fallback_pair;
        }
        Py_XSETREF(self->last_dt, when);
        self->last_ms = ttms;
    }
    PyObject *side = Py_None;
    if (key_is(f[T_AB].s, f[T_AB].n, "BID", 3)) {
        side = self->s_buy;
    }
    else if (key_is(f[T_AB].s, f[T_AB].n, "ASK", 3)) {
        side = self->s_sell;
    }
    PyObject *argv[TRADE_NKW] = {self->venue, PyTuple_GET_ITEM(sym, 0), PyTuple_GET_ITEM(sym, 1),
                                 self->last_dt, receive_time, tid, price, size_obj, side,
                                 sid_obj};
    event = PyObject_Vectorcall(self->trade_type, argv, 0, self->kw);
    if (event == NULL) {
        goto fallback_pair;
    }
    out = PyList_New(1);
    if (out == NULL) {
        goto fallback_pair;
    }
    /* the dedup, as the Python handler updates it */
    if (PySet_Add(ids, sid_obj) < 0) {
        goto error_pair;
    }
    PyObject *r = PyObject_CallMethodOneArg(order, self->s_append, sid_obj);
    if (r == NULL) {
        goto error_pair;
    }
    Py_DECREF(r);
    Py_ssize_t held = PyObject_Size(order);
    if (held < 0) {
        goto error_pair;
    }
    if (held > self->window) {
        PyObject *old = PyObject_CallMethodNoArgs(order, self->s_popleft);
        if (old == NULL || PySet_Discard(ids, old) < 0) {
            Py_XDECREF(old);
            goto error_pair;
        }
        Py_DECREF(old);
    }
    PyList_SET_ITEM(out, 0, event);
    event = NULL;
    goto done_pair;
error_pair: /* the dedup half updated: raise (nothing to hand to Python) */
    Py_CLEAR(out);
    goto done_pair;
fallback_pair:
    Py_CLEAR(out);
    PyErr_Clear();
    out = Py_NewRef(Py_None);
done_pair:
    Py_DECREF(sym);
    Py_DECREF(pair);
    goto done;
fallback:
    PyErr_Clear();
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(code);
    Py_XDECREF(sid_obj);
    Py_XDECREF(price);
    Py_XDECREF(size_obj);
    Py_XDECREF(tid);
    Py_XDECREF(event);
    return out;
}

static PyObject *
Trade_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    TradeReader *self = (TradeReader *)op;
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "Trade(frame, receive_time) takes 2 arguments");
        return NULL;
    }
    if (self->ids == NULL) { /* cleared by the garbage collector */
        Py_RETURN_NONE;
    }
    return trade(self, args[0], args[1]);
}

PyDoc_STRVAR(Trade_doc,
"Trade(default, venue, trade_type, markets, ids, window, decimal)\n\n"
"Called as reader(frame, receive_time) (frame: str or bytes, one Upbit trade frame in the\n"
"DEFAULT format if `default` else SIMPLE): a list with one Trade, () for a trade already\n"
"seen (its (market, sequential_id) in ids[code]: a (set, deque) pair, at most `window`\n"
"ids), or None for any frame it does not take, a market's first frame included (the\n"
"caller then decodes it the Python way). markets: code -> (symbol, native code).");

static PyTypeObject TradeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed_upbit._cupbit.Trade",
    .tp_basicsize = sizeof(TradeReader),
    .tp_dealloc = (destructor)Trade_dealloc,
    .tp_vectorcall_offset = offsetof(TradeReader, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Trade_traverse,
    .tp_clear = (inquiry)Trade_clear,
    .tp_doc = Trade_doc,
    .tp_new = Trade_new,
};

/* ------------------------------------------------------------------ dispatch */

/* UpbitNormaliser.__call__ in C: the frame's first HEAD_LEN bytes pick its reader (Book,
 * Trade or any callable) by comparing them with each known head, as the Python method's
 * `self._fast.get(frame[:12])` does without slicing or hashing; what the reader does not
 * take (None), and any other frame, goes to `decode` (the rest of __call__). */

#define HEAD_LEN 12
#define MAX_HEADS 16

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Py_ssize_t n_bytes, n_text;
    char bytes_heads[MAX_HEADS][HEAD_LEN]; /* heads of binary frames */
    char text_heads[MAX_HEADS][HEAD_LEN];  /* heads of text frames */
    PyObject *bytes_readers[MAX_HEADS];
    PyObject *text_readers[MAX_HEADS];
    PyObject *decode;  /* decode(frame, receive_time): everything else */
    PyObject *flush;   /* flush(events): the pending statuses first */
    PyObject *pending; /* list: statuses waiting for the next events */
} Dispatch;

static int
Dispatch_traverse(Dispatch *self, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < self->n_bytes; i++) {
        Py_VISIT(self->bytes_readers[i]);
    }
    for (Py_ssize_t i = 0; i < self->n_text; i++) {
        Py_VISIT(self->text_readers[i]);
    }
    Py_VISIT(self->decode);
    Py_VISIT(self->flush);
    Py_VISIT(self->pending);
    return 0;
}

static int
Dispatch_clear(Dispatch *self)
{
    for (Py_ssize_t i = 0; i < self->n_bytes; i++) {
        Py_CLEAR(self->bytes_readers[i]);
    }
    for (Py_ssize_t i = 0; i < self->n_text; i++) {
        Py_CLEAR(self->text_readers[i]);
    }
    self->n_bytes = self->n_text = 0;
    Py_CLEAR(self->decode);
    Py_CLEAR(self->flush);
    Py_CLEAR(self->pending);
    return 0;
}

static void
Dispatch_dealloc(Dispatch *self)
{
    PyObject_GC_UnTrack(self);
    Dispatch_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Dispatch_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Dispatch *self = (Dispatch *)op;
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "dispatch(frame, receive_time) takes 2 arguments");
        return NULL;
    }
    if (self->decode == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Dispatch: used after being cleared");
        return NULL;
    }
    PyObject *frame = args[0];
    const char *data = NULL;
    Py_ssize_t len = 0, n = 0;
    char(*heads)[HEAD_LEN] = NULL;
    PyObject **readers = NULL;
    if (PyBytes_CheckExact(frame)) {
        data = PyBytes_AS_STRING(frame);
        len = PyBytes_GET_SIZE(frame);
        heads = self->bytes_heads;
        readers = self->bytes_readers;
        n = self->n_bytes;
    }
    else if (PyUnicode_CheckExact(frame) && PyUnicode_IS_COMPACT_ASCII(frame)) {
        data = (const char *)PyUnicode_DATA(frame);
        len = PyUnicode_GET_LENGTH(frame);
        heads = self->text_heads;
        readers = self->text_readers;
        n = self->n_text;
    }
    if (len >= HEAD_LEN) {
        for (Py_ssize_t i = 0; i < n; i++) {
            if (memcmp(data, heads[i], HEAD_LEN) != 0) {
                continue;
            }
            PyObject *events = PyObject_Vectorcall(readers[i], args, 2, NULL);
            if (events == NULL) {
                return NULL;
            }
            if (events == Py_None) {
                Py_DECREF(events);
                break;
            }
            if (PyList_CheckExact(self->pending) && PyList_GET_SIZE(self->pending) == 0) {
                return events;
            }
            PyObject *out = PyObject_CallOneArg(self->flush, events);
            Py_DECREF(events);
            return out;
        }
    }
    return PyObject_Vectorcall(self->decode, args, 2, NULL);
}

static PyObject *
Dispatch_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fast, *decode, *flush, *pending;
    if (!PyArg_ParseTuple(args, "O!OOO!:Dispatch", &PyDict_Type, &fast, &decode, &flush,
                          &PyList_Type, &pending)) {
        return NULL;
    }
    Dispatch *self = (Dispatch *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = Dispatch_vectorcall;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(fast, &pos, &key, &value)) {
        const char *head;
        Py_ssize_t head_len;
        char(*heads)[HEAD_LEN];
        PyObject **readers;
        Py_ssize_t *count;
        if (PyBytes_CheckExact(key)) {
            head = PyBytes_AS_STRING(key);
            head_len = PyBytes_GET_SIZE(key);
            heads = self->bytes_heads;
            readers = self->bytes_readers;
            count = &self->n_bytes;
        }
        else if (PyUnicode_CheckExact(key) && PyUnicode_IS_COMPACT_ASCII(key)) {
            head = (const char *)PyUnicode_DATA(key);
            head_len = PyUnicode_GET_LENGTH(key);
            heads = self->text_heads;
            readers = self->text_readers;
            count = &self->n_text;
        }
        else {
            head_len = -1;
        }
        if (head_len != HEAD_LEN || *count >= MAX_HEADS) {
            Py_DECREF(self);
            PyErr_SetString(PyExc_ValueError,
                            "Dispatch: heads must be at most 16 bytes and 16 ASCII str keys of "
                            "12 characters");
            return NULL;
        }
        memcpy(heads[*count], head, HEAD_LEN);
        readers[*count] = Py_NewRef(value);
        (*count)++;
    }
    self->decode = Py_NewRef(decode);
    self->flush = Py_NewRef(flush);
    self->pending = Py_NewRef(pending);
    return (PyObject *)self;
}

PyDoc_STRVAR(Dispatch_doc,
"Dispatch(fast, decode, flush, pending)\n\n"
"Called as dispatch(frame, receive_time), UpbitNormaliser.__call__ in C: fast maps a\n"
"frame's first 12 bytes (bytes keys for binary frames, str keys for text) to its reader;\n"
"a reader's events are returned (through flush(events) while the list `pending` is not\n"
"empty); a frame no reader takes (None) goes to decode(frame, receive_time).");

static PyTypeObject DispatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed_upbit._cupbit.Dispatch",
    .tp_basicsize = sizeof(Dispatch),
    .tp_dealloc = (destructor)Dispatch_dealloc,
    .tp_vectorcall_offset = offsetof(Dispatch, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)Dispatch_traverse,
    .tp_clear = (inquiry)Dispatch_clear,
    .tp_doc = Dispatch_doc,
    .tp_new = Dispatch_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cupbit", "C fast path of the Upbit normaliser (optional).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__cupbit(void)
{
    for (int f = 0; f < 2; f++) {
        for (int k = 0; k < K_COUNT; k++) {
            FRAME_LEN[f][k] = (Py_ssize_t)strlen(NAMES[f].frame[k]);
        }
        for (int k = 0; k < U_COUNT; k++) {
            UNIT_LEN[f][k] = (Py_ssize_t)strlen(NAMES[f].unit[k]);
        }
        for (int k = 0; k < T_COUNT; k++) {
            TRADE_LEN[f][k] = (Py_ssize_t)strlen(TRADE_NAMES[f][k]);
        }
    }
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    if (PyType_Ready(&BookType) < 0 || PyType_Ready(&TradeType) < 0 ||
        PyType_Ready(&DispatchType) < 0 || PyType_Ready(&UnitIndexType) < 0) {
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
    if (PyModule_AddObjectRef(m, "FAST_DECIMAL",
                              CBOOK != NULL && CBOOK->decimal_type != NULL ? Py_True
                                                                          : Py_False) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&BookType);
    if (PyModule_AddObject(m, "Book", (PyObject *)&BookType) < 0) {
        Py_DECREF(&BookType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TradeType);
    if (PyModule_AddObject(m, "Trade", (PyObject *)&TradeType) < 0) {
        Py_DECREF(&TradeType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&DispatchType);
    if (PyModule_AddObject(m, "Dispatch", (PyObject *)&DispatchType) < 0) {
        Py_DECREF(&DispatchType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&UnitIndexType);
    if (PyModule_AddObject(m, "UnitIndex", (PyObject *)&UnitIndexType) < 0) {
        Py_DECREF(&UnitIndexType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

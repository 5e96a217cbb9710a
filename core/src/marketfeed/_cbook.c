/* marketfeed._cbook: optional C speedups of the L2 book engine (marketfeed._book).
 *
 * Every function works on the pure-Python engine's own data structures (the lists and
 * dict of ``_Side``) and does exactly what the Python code in ``_book.py`` does; where a
 * case is rare or needs Decimal arithmetic (exact-mode sides, two prices on one double,
 * a price spelled differently, "+"-signed or non-ASCII sizes, malformed or non-str input)
 * it stops *before* touching that level and hands the rest back to Python, so
 * behaviour (results, exceptions, messages) is the pure-Python engine's by construction.
 *
 * Hand-written CPython C API, no dependencies (CRC32 is computed here, slice-by-8).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *ZERO, *ONE; /* the ints 0 and 1 */

/* Size zero test of _apply_side_py / _is_zero on an exact, ASCII str.
 * Returns 1 zero, 0 not zero, -1 "not decided here" (hand back). */
static int
size_zero_ascii(const char *s, Py_ssize_t n)
{
    if (n == 0) {
        return -1;
    }
    char c = s[0];
    if (c == '0' || c == '.') {
        /* sz.strip("0."): empty or starting with e/E means zero */
        Py_ssize_t lo = 0, hi = n;
        while (lo < hi && (s[lo] == '0' || s[lo] == '.')) {
            lo++;
        }
        while (hi > lo && (s[hi - 1] == '0' || s[hi - 1] == '.')) {
            hi--;
        }
        return lo == hi || s[lo] == 'e' || s[lo] == 'E';
    }
    if (c >= '1' && c <= '9') {
        return 0;
    }
    return -1;
}

static inline int
size_is_zero(PyObject *sz)
{
    if (!PyUnicode_CheckExact(sz) || !PyUnicode_IS_COMPACT_ASCII(sz)) {
        return -1;
    }
    return size_zero_ascii((const char *)PyUnicode_DATA(sz), PyUnicode_GET_LENGTH(sz));
}

static const double POW10[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* float(px) for a plain decimal price (digits with at most one '.', at least one digit,
 * ASCII). Returns 0 and sets *out (finite), or -1: not decided here (hand back). */
static int
parse_price_ascii(const char *s, Py_ssize_t n, double *out)
{
    if (n <= 19) {
        /* one pass: check and read the digits (19 digits fit a uint64) */
        uint64_t m = 0;
        int frac = 0, dot = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            unsigned d = (unsigned)((unsigned char)s[i] - '0');
            if (d <= 9) {
                m = m * 10 + d;
                frac += dot;
            }
            else if (s[i] == '.' && !dot) {
                dot = 1;
            }
            else {
                return -1;
            }
        }
        if (n == dot) {
            return -1; /* no digit ("" or ".") */
        }
        if (m < ((uint64_t)1 << 53) && frac <= 22) {
            /* Exact fast path (Clinger): a mantissa below 2**53 and a power of ten up to
             * 1e22 are both exact doubles, so one IEEE division is the correctly rounded
             * value, the same double float() gives. */
            *out = (double)m / POW10[frac];
            return 0;
        }
    }
    else {
        int digits = 0, dots = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            char c = s[i];
            if (c >= '0' && c <= '9') {
                digits++;
            }
            else if (c == '.' && !dots) {
                dots = 1;
            }
            else {
                return -1;
            }
        }
        if (!digits) {
            return -1;
        }
    }
    char text[64]; /* a NUL-terminated copy: s may point into a frame */
    if (n >= (Py_ssize_t)sizeof(text)) {
        return -1;
    }
    memcpy(text, s, (size_t)n);
    text[n] = '\0';
    char *end = NULL;
    double f = PyOS_string_to_double(text, &end, NULL); /* correctly rounded, as float() */
    if (f == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (end != text + n || !isfinite(f)) {
        return -1;
    }
    *out = f;
    return 0;
}

static inline int
parse_price(PyObject *px, double *out)
{
    if (!PyUnicode_CheckExact(px) || !PyUnicode_IS_COMPACT_ASCII(px)) {
        return -1;
    }
    return parse_price_ascii((const char *)PyUnicode_DATA(px), PyUnicode_GET_LENGTH(px), out);
}

/* ------------------------------------------------------------------ Side */

/* One side of a book as a C array (what ``_Side`` is with lists, in pure Python).
 *
 * Levels sit best first in buf[head .. head + len): a sort key (float(price), negated on
 * the bid side) and the price and size texts as the venue sent them (in the level itself,
 * see lvtext). The array has room at both ends, so an insert or a delete moves the
 * shorter part: levels near the best price (where most updates land) and near the worst
 * (where a fixed-depth channel drops them) move few others. No dict and no float
 * objects: a price is found by its key (one bisection) and its text.
 *
 * Anything rare goes to the pure-Python ``_Side`` as it is, so results and errors are
 * Python's by construction: the levels are copied into a ``_Side`` (``py``), Python
 * applies the update, and the levels come back into the array unless the side went to
 * exact mode (two different prices on one double), which stays in Python until the next
 * snapshot. Rare means: a level that is not a list/tuple of two str, a price that is not
 * plain ASCII digits with at most one '.', a size that is not plain (signed, lettered,
 * negative, not a str), two prices on one double, a snapshot that is not strictly
 * sorted best first or holds zero sizes. */

/* A level's price or size text as the venue sent it: in the level itself (up to
 * LV_INLINE ASCII bytes, the length in the level), or a str object (LV_OBJ as the length:
 * a longer text, a size that is not ASCII or not an exact str). Holding the text inline
 * makes no str per level: a 400-level snapshot made and later freed 1,600 of them, and a
 * delta one per changed price or size. str objects are made only when Python asks for
 * the texts (columns, head, pairs, the pure-Python side). */
#define LV_INLINE 16
#define LV_OBJ 0xFF
typedef union {
    char c[LV_INLINE];
    PyObject *o; /* owned */
} lvtext;

typedef struct {
    double key; /* float(price), negated on the bid side: ascending = best first */
    /* the checksum fragment of this level (see crc_sides_fast): the CRC32 register after
     * sep px sep sz from 0, and that text's length; flen 0: not computed since the level
     * last changed */
    uint32_t frag;
    uint8_t flen;
    uint8_t pxn, szn; /* the texts' lengths, or LV_OBJ */
    lvtext px;        /* the price (always ASCII digits and '.': see side_put) */
    lvtext sz;        /* the size */
} Level;

/* Copy len (<= 16) bytes reading and writing only [0, len): two fixed-size, possibly
 * overlapping copies (cheaper than a call to memcpy or a byte loop for prices and sizes). */
static inline void
copy_short(unsigned char *dst, const char *src, Py_ssize_t len)
{
    if (len >= 8) {
        memcpy(dst, src, 8);
        memcpy(dst + len - 8, src + len - 8, 8);
    }
    else if (len >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + len - 4, src + len - 4, 4);
    }
    else {
        for (Py_ssize_t i = 0; i < len; i++) {
            dst[i] = (unsigned char)src[i];
        }
    }
}

/* A level text's bytes and length; NULL for a str object that is not compact ASCII. */
static inline const char *
lv_text(const lvtext *t, uint8_t n, Py_ssize_t *len)
{
    if (n != LV_OBJ) {
        *len = n;
        return t->c;
    }
    if (!PyUnicode_IS_COMPACT_ASCII(t->o)) {
        return NULL;
    }
    *len = PyUnicode_GET_LENGTH(t->o);
    return (const char *)PyUnicode_DATA(t->o);
}

static inline PyObject *ascii_str(const char *s, Py_ssize_t n);

/* A level text as a new str. */
static inline PyObject *
lv_str(const lvtext *t, uint8_t n)
{
    return n == LV_OBJ ? Py_NewRef(t->o) : ascii_str(t->c, n);
}

/* A level text as a new str that the level keeps from now on (its text moves into it):
 * what Python reads once (columns, head, pairs: a Python checksum function reads the top
 * levels after every update) is made once per text, as when levels held str objects. */
static inline PyObject *
lv_str_kept(lvtext *t, uint8_t *n)
{
    if (*n != LV_OBJ) {
        PyObject *u = ascii_str(t->c, *n);
        if (u == NULL) {
            return NULL;
        }
        t->o = u;
        *n = LV_OBJ;
    }
    return Py_NewRef(t->o);
}

/* Set a level text (*t, *n hold none): the str obj (borrowed) if given, else the ASCII
 * text s[:len]; inline when it is short ASCII. 0, or -1 with MemoryError. */
static inline int
lv_set(lvtext *t, uint8_t *n, PyObject *obj, const char *s, Py_ssize_t len)
{
    if (obj != NULL) {
        if (!PyUnicode_CheckExact(obj) || !PyUnicode_IS_COMPACT_ASCII(obj) ||
            PyUnicode_GET_LENGTH(obj) > LV_INLINE) {
            t->o = Py_NewRef(obj);
            *n = LV_OBJ;
            return 0;
        }
        s = (const char *)PyUnicode_DATA(obj);
        len = PyUnicode_GET_LENGTH(obj);
    }
    if (len <= LV_INLINE) {
        copy_short((unsigned char *)t->c, s, len);
        *n = (uint8_t)len;
        return 0;
    }
    PyObject *u = ascii_str(s, len);
    if (u == NULL) {
        return -1;
    }
    t->o = u;
    *n = LV_OBJ;
    return 0;
}

/* Release a level text (a str: no Python code runs). */
static inline void
lv_release(lvtext *t, uint8_t n)
{
    if (n == LV_OBJ) {
        Py_DECREF(t->o);
    }
}

typedef struct {
    PyObject_HEAD
    Level *buf;
    Py_ssize_t cap, head, len;
    int neg;
    int frag_sep; /* the separator byte the levels' fragments were computed with, or -1 */
    PyObject *py; /* the pure-Python _Side holding the levels instead, or NULL */
} SideObject;

static PyTypeObject SideType;
static PyObject *py_side_type; /* marketfeed._book._Side */
static PyObject *py_apply;     /* marketfeed._book._apply_side_py */
static PyObject *S_EXACT_ATTR, *S_KEYS_ATTR, *S_PXS_ATTR, *S_SZS_ATTR, *S_INDEX_ATTR,
    *S_LOAD, *S_COLUMNS, *S_HEAD, *S_PAIRS, *S_FORGET;

#define LV(s) ((s)->buf + (s)->head)

/* Drop every level (and the Python side). */
static void
side_clear_levels(SideObject *s)
{
    Level *b = LV(s);
    for (Py_ssize_t i = 0; i < s->len; i++) {
        lv_release(&b[i].px, b[i].pxn);
        lv_release(&b[i].sz, b[i].szn);
    }
    s->len = 0;
    s->head = s->cap / 2;
    Py_CLEAR(s->py);
}

/* Room for `want` levels with `slack` free slots at each end (the levels re-centred);
 * -1 with MemoryError. */
static int
side_room(SideObject *s, Py_ssize_t want, Py_ssize_t slack)
{
    Py_ssize_t need = want + 2 * slack;
    Py_ssize_t cap = s->cap;
    if (need > cap || cap > 4 * (need + 16)) {
        cap = 2 * need + 16;
    }
    Py_ssize_t head = (cap - s->len) / 2;
    if (cap != s->cap) {
        Level *mem = PyMem_Malloc((size_t)cap * sizeof(Level));
        if (mem == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (s->len) {
            memcpy(mem + head, LV(s), (size_t)s->len * sizeof(Level));
        }
        PyMem_Free(s->buf);
        s->buf = mem;
        s->cap = cap;
    }
    else if (head != s->head) {
        memmove(s->buf + head, LV(s), (size_t)s->len * sizeof(Level));
    }
    s->head = head;
    return 0;
}

/* Open a hole at index i (0 <= i <= len), moving the shorter part; -1 on MemoryError. */
static inline int
side_open(SideObject *s, Py_ssize_t i)
{
    Py_ssize_t n = s->len;
    if (i < n - i) {
        if (s->head == 0 && side_room(s, n + 1, n / 2 + 8) < 0) {
            return -1;
        }
        Level *b = LV(s);
        memmove(b - 1, b, (size_t)i * sizeof(Level));
        s->head--;
    }
    else {
        if (s->head + n == s->cap && side_room(s, n + 1, n / 2 + 8) < 0) {
            return -1;
        }
        Level *b = LV(s);
        memmove(b + i + 1, b + i, (size_t)(n - i) * sizeof(Level));
    }
    s->len = n + 1;
    return 0;
}

/* Remove level i (0 <= i < len), moving the shorter part. */
static inline void
side_remove(SideObject *s, Py_ssize_t i)
{
    Level *b = LV(s);
    Level gone = b[i];
    Py_ssize_t n = s->len;
    if (i < n - 1 - i) {
        memmove(b + 1, b, (size_t)i * sizeof(Level));
        s->head++;
    }
    else {
        memmove(b + i, b + i + 1, (size_t)(n - 1 - i) * sizeof(Level));
    }
    s->len = n - 1;
    lv_release(&gone.px, gone.pxn);
    lv_release(&gone.sz, gone.szn);
}

/* First index whose key is >= key. */
static inline Py_ssize_t
side_bisect(const SideObject *s, double key)
{
    const Level *b = LV(s);
    Py_ssize_t lo = 0, hi = s->len;
    while (lo < hi) {
        Py_ssize_t mid = lo + ((hi - lo) >> 1);
        if (b[mid].key < key) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return lo;
}

/* Whether two plain decimal texts (ASCII digits, at most one '.', at least one digit: what
 * parse_price accepts) are the same number, as Decimal(a) == Decimal(b). */
static int
plain_same_number(const char *a, Py_ssize_t an, const char *b, Py_ssize_t bn)
{
    const char *s[2] = {a, b};
    Py_ssize_t n[2] = {an, bn};
    const char *lo[2], *hi[2]; /* significant part: integer digits without leading zeros,
                                  then the fraction without trailing zeros */
    Py_ssize_t dot[2];
    for (int k = 0; k < 2; k++) {
        const char *p = s[k], *e = s[k] + n[k];
        const char *d = memchr(p, '.', (size_t)n[k]);
        if (d == NULL) {
            d = e;
        }
        while (p < d && *p == '0') {
            p++;
        }
        if (d < e) {
            while (e > d + 1 && e[-1] == '0') {
                e--;
            }
            if (e == d + 1) {
                e = d; /* "5." or "5.000": no fraction */
            }
        }
        lo[k] = p;
        hi[k] = e;
        dot[k] = d - p; /* integer digits left */
    }
    return dot[0] == dot[1] && hi[0] - lo[0] == hi[1] - lo[1] &&
           memcmp(lo[0], lo[1], (size_t)(hi[0] - lo[0])) == 0;
}

/* A level as raw text (pointers into a frame the caller keeps alive): the layout of the
 * capsule's engine_delta_raw (see cbook_api). */
typedef struct {
    const char *px;
    Py_ssize_t pxn;
    const char *sz;
    Py_ssize_t szn;
} raw_level;

/* What raw_decimal_levels learnt of a raw level while building its Decimals, so that
 * applying it does not read its texts again: the price as parse_price_ascii gives it (f;
 * NaN: not known, parse the text) and whether the size is zero. */
typedef struct {
    double f;
    int zero;
} raw_parsed;
#define RAW_PARSED_MAX 256 /* levels of one update kept so (more: the texts are parsed) */

/* Whether s[:n] is digits with at most one '.' and at least one digit. */
static inline int
plain_text(const char *s, Py_ssize_t n)
{
    int dot = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((unsigned)((unsigned char)s[i] - '0') > 9) {
            if (s[i] != '.' || dot) {
                return 0;
            }
            dot = 1;
        }
    }
    return n > dot;
}

/* A str of n ASCII bytes (the caller checked them). */
static inline PyObject *
ascii_str(const char *s, Py_ssize_t n)
{
    PyObject *u = PyUnicode_New(n, 127);
    if (u != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
    }
    return u;
}


/* How many of `len` items list[:n] takes for the int n, or all of them for None: the
 * count, or -1 with an exception (n not an int). */
static Py_ssize_t
slice_count(PyObject *n, Py_ssize_t len)
{
    if (n == Py_None) {
        return len;
    }
    Py_ssize_t k = PyNumber_AsSsize_t(n, NULL); /* clamped: 10**30 is PY_SSIZE_T_MAX */
    if (k == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (k < 0) { /* from the end, as list[:-2] */
        k = len + k < 0 ? 0 : len + k;
    }
    return k < len ? k : len;
}

/* The texts of level n: raw[n], or (raw NULL) items[n], a list or tuple of at least two
 * exact, compact ASCII str, which are then *pxo and *szo (borrowed; NULL for raw). 0, or -1
 * when the level is not taken here (a raw size that is not plain text, an item of another
 * shape): Python's. */
static inline int
level_text(const raw_level *raw, PyObject **items, Py_ssize_t n, const char **p,
           Py_ssize_t *pn, PyObject **pxo, const char **z, Py_ssize_t *zn, PyObject **szo)
{
    if (raw != NULL) {
        *p = raw[n].px;
        *pn = raw[n].pxn;
        *z = raw[n].sz;
        *zn = raw[n].szn;
        *pxo = *szo = NULL;
        return plain_text(*z, *zn) ? 0 : -1; /* ASCII, for the str made of it */
    }
    PyObject *lv = items[n];
    if (!(PyList_CheckExact(lv) || PyTuple_CheckExact(lv)) || PySequence_Fast_GET_SIZE(lv) < 2) {
        return -1;
    }
    PyObject *px = PySequence_Fast_GET_ITEM(lv, 0), *sz = PySequence_Fast_GET_ITEM(lv, 1);
    if (!PyUnicode_CheckExact(px) || !PyUnicode_IS_COMPACT_ASCII(px) ||
        !PyUnicode_CheckExact(sz) || !PyUnicode_IS_COMPACT_ASCII(sz)) {
        return -1;
    }
    *p = (const char *)PyUnicode_DATA(px);
    *pn = PyUnicode_GET_LENGTH(px);
    *z = (const char *)PyUnicode_DATA(sz);
    *zn = PyUnicode_GET_LENGTH(sz);
    *pxo = px;
    *szo = sz;
    return 0;
}

/* One delta level on a side in array mode: price text p[:pn] whose key is f (negated on
 * the bid side), a zero size or not, and the texts to keep: the str pxo and szo
 * (borrowed), or where NULL the ASCII texts p[:pn] and z[:zn] (see lv_set). Returns 1
 * applied (*at: the level's index, -1 when nothing changed), 0 not decided here (two
 * prices on one double: Python's exact mode; nothing changed), -1 error. */
static inline int
side_put(SideObject *s, double f, int zero, const char *p, Py_ssize_t pn, PyObject *pxo,
         const char *z, Py_ssize_t zn, PyObject *szo, Py_ssize_t *at)
{
    Py_ssize_t i = side_bisect(s, f);
    Level *b = LV(s);
    *at = -1;
    if (i < s->len && b[i].key == f) {
        Py_ssize_t sn;
        const char *sd = lv_text(&b[i].px, b[i].pxn, &sn); /* prices are ASCII: never NULL */
        if (sn != pn || memcmp(sd, p, (size_t)sn) != 0) {
            if (!plain_same_number(sd, sn, p, pn)) {
                return 0;
            }
            lvtext t; /* the same price spelled anew: it wins */
            uint8_t tn;
            if (lv_set(&t, &tn, pxo, p, pn) < 0) {
                return -1;
            }
            lv_release(&b[i].px, b[i].pxn);
            b[i].px = t;
            b[i].pxn = tn;
            b[i].flen = 0;
        }
        if (zero) {
            side_remove(s, i);
        }
        else {
            lvtext t;
            uint8_t tn;
            if (lv_set(&t, &tn, szo, z, zn) < 0) {
                return -1;
            }
            lv_release(&b[i].sz, b[i].szn);
            b[i].sz = t;
            b[i].szn = tn;
            b[i].flen = 0;
        }
    }
    else if (zero) {
        return 1; /* deleting a level that is not there: nothing changes */
    }
    else {
        Level e;
        e.key = f;
        e.frag = 0;
        e.flen = 0;
        if (lv_set(&e.px, &e.pxn, pxo, p, pn) < 0) {
            return -1;
        }
        if (lv_set(&e.sz, &e.szn, szo, z, zn) < 0) {
            lv_release(&e.px, e.pxn);
            return -1;
        }
        if (side_open(s, i) < 0) {
            lv_release(&e.px, e.pxn);
            lv_release(&e.sz, e.szn);
            return -1;
        }
        LV(s)[i] = e;
    }
    *at = i;
    return 1;
}

/* Apply delta levels (a list or tuple) to a side in array mode. Returns 0: all applied;
 * 1: levels before *n_out applied, the rest is Python's (nothing of level *n_out changed);
 * -1: error. With raw (not NULL) the levels are raw[:count] and `levels` is not read:
 * no str is made (the side copies the texts it keeps); with pre too, pre[:count] says what
 * raw_decimal_levels read of them. *dirty: whether an operation landed in
 * the top `watch` levels. Levels that are not plain text (list/tuple of two compact ASCII
 * str; digits with at most one '.') are handed back. */
static int
side_apply(SideObject *s, PyObject *levels, const raw_level *raw, const raw_parsed *pre,
           Py_ssize_t count, Py_ssize_t watch, Py_ssize_t *n_out, int *dirty_out)
{
    int dirty = 0, rc = 1;
    Py_ssize_t n = 0;
    PyObject **items = raw == NULL ? PySequence_Fast_ITEMS(levels) : NULL;
    for (; n < count; n++) {
        const char *p, *z;
        Py_ssize_t pn, zn;
        PyObject *px, *sz;
        int zero;
        double f;
        if (pre != NULL && !isnan(pre[n].f)) { /* plain texts, parsed already */
            p = raw[n].px;
            pn = raw[n].pxn;
            z = raw[n].sz;
            zn = raw[n].szn;
            px = sz = NULL;
            f = pre[n].f;
            zero = pre[n].zero;
        }
        else if (level_text(raw, items, n, &p, &pn, &px, &z, &zn, &sz) < 0 ||
                 (zero = size_zero_ascii(z, zn)) < 0 || parse_price_ascii(p, pn, &f) < 0) {
            break;
        }
        Py_ssize_t at;
        rc = side_put(s, s->neg ? -f : f, zero, p, pn, px, z, zn, sz, &at);
        if (rc <= 0) {
            break;
        }
        if (at >= 0 && at < watch) {
            dirty = 1;
        }
    }
    *n_out = n;
    *dirty_out = dirty;
    return n == count ? 0 : (rc < 0 ? -1 : 1);
}

/* One raw level as the (price, size) str tuple a decoder would give (UTF-8). */
static PyObject *
raw_pair(const raw_level *l)
{
    PyObject *px = PyUnicode_DecodeUTF8(l->px, l->pxn, NULL);
    PyObject *sz = px == NULL ? NULL : PyUnicode_DecodeUTF8(l->sz, l->szn, NULL);
    PyObject *t = sz == NULL ? NULL : PyTuple_Pack(2, px, sz);
    Py_XDECREF(px);
    Py_XDECREF(sz);
    return t;
}

/* Raw levels as the list of (price, size) str tuples a decoder would give (UTF-8). */
static PyObject *
raw_to_list(const raw_level *lv, Py_ssize_t count)
{
    PyObject *out = PyList_New(count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *t = raw_pair(lv + n);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, n, t);
    }
    return out;
}

/* Copy the levels into a new pure-Python _Side (s->py). 0, or -1 with an exception. */
static int
side_to_python(SideObject *s)
{
    if (py_side_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "marketfeed._cbook.Side: _Side not registered");
        return -1;
    }
    Py_ssize_t n = s->len;
    PyObject *py = PyObject_CallOneArg(py_side_type, s->neg ? Py_True : Py_False);
    PyObject *keys = PyList_New(n), *pxs = PyList_New(n), *szs = PyList_New(n);
    PyObject *index = PyDict_New();
    if (py == NULL || keys == NULL || pxs == NULL || szs == NULL || index == NULL) {
        goto error;
    }
    Level *b = LV(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *k = PyFloat_FromDouble(b[i].key);
        if (k == NULL) {
            goto error;
        }
        PyList_SET_ITEM(keys, i, k);
        PyObject *px = lv_str(&b[i].px, b[i].pxn);
        if (px == NULL) {
            goto error;
        }
        PyList_SET_ITEM(pxs, i, px);
        PyObject *sz = lv_str(&b[i].sz, b[i].szn);
        if (sz == NULL) {
            goto error;
        }
        PyList_SET_ITEM(szs, i, sz);
        if (PyDict_SetItem(index, px, k) < 0) {
            goto error;
        }
    }
    if (PyObject_SetAttr(py, S_KEYS_ATTR, keys) < 0 || PyObject_SetAttr(py, S_PXS_ATTR, pxs) < 0 ||
        PyObject_SetAttr(py, S_SZS_ATTR, szs) < 0 || PyObject_SetAttr(py, S_INDEX_ATTR, index) < 0) {
        goto error;
    }
    Py_DECREF(keys);
    Py_DECREF(pxs);
    Py_DECREF(szs);
    Py_DECREF(index);
    side_clear_levels(s);
    s->py = py;
    return 0;
error:
    Py_XDECREF(py);
    Py_XDECREF(keys);
    Py_XDECREF(pxs);
    Py_XDECREF(szs);
    Py_XDECREF(index);
    return -1;
}

/* Take the levels back from s->py into the array unless it is in exact mode (or holds
 * what the array does not: a key that is not a float, a price that is not compact ASCII).
 * 0 (taken back or left in Python), -1 with an exception. */
static int
side_from_python(SideObject *s)
{
    PyObject *py = s->py;
    PyObject *exact = PyObject_GetAttr(py, S_EXACT_ATTR);
    if (exact == NULL) {
        return -1;
    }
    int stay = exact != Py_False;
    Py_DECREF(exact);
    if (stay) {
        return 0;
    }
    PyObject *keys = PyObject_GetAttr(py, S_KEYS_ATTR);
    PyObject *pxs = PyObject_GetAttr(py, S_PXS_ATTR);
    PyObject *szs = PyObject_GetAttr(py, S_SZS_ATTR);
    int rc = 0;
    if (keys == NULL || pxs == NULL || szs == NULL) {
        rc = -1;
        goto done;
    }
    if (!PyList_CheckExact(keys) || !PyList_CheckExact(pxs) || !PyList_CheckExact(szs)) {
        goto done;
    }
    Py_ssize_t n = PyList_GET_SIZE(keys);
    if (PyList_GET_SIZE(pxs) != n || PyList_GET_SIZE(szs) != n) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *px = PyList_GET_ITEM(pxs, i);
        if (!PyFloat_CheckExact(PyList_GET_ITEM(keys, i)) || !PyUnicode_CheckExact(px) ||
            !PyUnicode_IS_COMPACT_ASCII(px) || !PyUnicode_Check(PyList_GET_ITEM(szs, i))) {
            goto done;
        }
    }
    s->py = NULL; /* the reference is released below */
    s->len = 0;
    if (side_room(s, n, n / 2 + 8) < 0) {
        s->py = py;
        rc = -1;
        goto done;
    }
    Level *b = LV(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        b[i].key = PyFloat_AS_DOUBLE(PyList_GET_ITEM(keys, i));
        b[i].flen = 0;
        if (lv_set(&b[i].px, &b[i].pxn, PyList_GET_ITEM(pxs, i), NULL, 0) < 0) {
            side_clear_levels(s); /* the levels set so far; py stays the side */
            s->py = py;
            rc = -1;
            goto done;
        }
        if (lv_set(&b[i].sz, &b[i].szn, PyList_GET_ITEM(szs, i), NULL, 0) < 0) {
            lv_release(&b[i].px, b[i].pxn);
            side_clear_levels(s);
            s->py = py;
            rc = -1;
            goto done;
        }
        s->len = i + 1;
    }
    Py_DECREF(py);
done:
    Py_XDECREF(keys);
    Py_XDECREF(pxs);
    Py_XDECREF(szs);
    return rc;
}

/* Python's _apply_side_py(s.py, levels[n:], watch) then the levels back into the array:
 * a new bool, or NULL with the exception Python raised. */
static PyObject *
side_apply_python(SideObject *s, PyObject *levels, Py_ssize_t n, Py_ssize_t watch)
{
    if (s->py == NULL && side_to_python(s) < 0) {
        return NULL;
    }
    PyObject *rest = n ? PySequence_GetSlice(levels, n, PY_SSIZE_T_MAX) : Py_NewRef(levels);
    if (rest == NULL) {
        return NULL;
    }
    PyObject *w = PyLong_FromSsize_t(watch);
    if (w == NULL) {
        Py_DECREF(rest);
        return NULL;
    }
    PyObject *args[3] = {s->py, rest, w};
    PyObject *r = PyObject_Vectorcall(py_apply, args, 3, NULL);
    Py_DECREF(rest);
    Py_DECREF(w);
    if (r == NULL) {
        return NULL; /* s->py holds what Python applied before it raised */
    }
    if (side_from_python(s) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

static PyObject *
Side_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"neg", NULL};
    int neg;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "p:Side", kwlist, &neg)) {
        return NULL;
    }
    SideObject *s = (SideObject *)type->tp_alloc(type, 0);
    if (s == NULL) {
        return NULL;
    }
    s->neg = neg;
    s->frag_sep = -1;
    return (PyObject *)s;
}

static int
Side_traverse(SideObject *s, visitproc visit, void *arg)
{
    Py_VISIT(s->py); /* the levels' str objects hold no references */
    return 0;
}

static int
Side_clear_gc(SideObject *s)
{
    Py_CLEAR(s->py);
    return 0;
}

static void
Side_dealloc(SideObject *s)
{
    PyObject_GC_UnTrack(s);
    side_clear_levels(s);
    PyMem_Free(s->buf);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static Py_ssize_t
Side_len(SideObject *s)
{
    if (s->py != NULL) {
        PyObject *keys = PyObject_GetAttr(s->py, S_KEYS_ATTR);
        if (keys == NULL) {
            return -1;
        }
        Py_ssize_t n = PyObject_Length(keys);
        Py_DECREF(keys);
        return n;
    }
    return s->len;
}

static PyObject *
Side_clear(SideObject *s, PyObject *Py_UNUSED(arg))
{
    side_clear_levels(s);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Side_load_doc,
"load(levels, /) -> None\n\n"
"Replace the side with snapshot levels, as ``_Side.load`` (any order; a repeated price\n"
"keeps its last size, zero sizes are skipped). Raises BookIntegrityError (malformed).");

/* ------------------------------------------------------------------ RawLevels */

/* Levels as raw text in a frame, for a snapshot: a read-only sequence of (price, size) str
 * tuples (made on access) that keeps the frame alive, so it is safe wherever it goes, and
 * that Side.load reads straight from the text (no str and no tuple per level). Venue
 * plugins' C parsers make them through the capsule (raw_levels). */
typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the object whose buffer the texts point into (the frame) */
    Py_ssize_t n;
    raw_level *v;
} RawLevelsObject;

static PyTypeObject RawLevelsType;

static PyObject *
raw_levels_new(PyObject *owner, const raw_level *v, Py_ssize_t n)
{
    RawLevelsObject *r = PyObject_New(RawLevelsObject, &RawLevelsType);
    if (r == NULL) {
        return NULL;
    }
    r->v = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(raw_level));
    if (r->v == NULL) {
        r->owner = NULL;
        r->n = 0;
        Py_DECREF(r);
        return PyErr_NoMemory();
    }
    if (n) {
        memcpy(r->v, v, (size_t)n * sizeof(raw_level));
    }
    r->n = n;
    r->owner = Py_NewRef(owner);
    return (PyObject *)r;
}

static void
RawLevels_dealloc(RawLevelsObject *r)
{
    Py_XDECREF(r->owner);
    PyMem_Free(r->v);
    PyObject_Free(r);
}

static Py_ssize_t
RawLevels_len(RawLevelsObject *r)
{
    return r->n;
}

static PyObject *
RawLevels_item(RawLevelsObject *r, Py_ssize_t i)
{
    if (i < 0 || i >= r->n) {
        PyErr_SetString(PyExc_IndexError, "level index out of range");
        return NULL;
    }
    return raw_pair(r->v + i);
}

static PyObject *raw_to_list(const raw_level *lv, Py_ssize_t count);

static PyObject *
RawLevels_subscript(RawLevelsObject *r, PyObject *key)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
        return RawLevels_item(r, i < 0 ? i + r->n : i);
    }
    if (PySlice_Check(key)) {
        PyObject *all = raw_to_list(r->v, r->n);
        if (all == NULL) {
            return NULL;
        }
        PyObject *part = PyObject_GetItem(all, key); /* list slicing, steps included */
        Py_DECREF(all);
        return part;
    }
    PyErr_Format(PyExc_TypeError, "level indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
}

static PyObject *
RawLevels_repr(RawLevelsObject *r)
{
    PyObject *all = raw_to_list(r->v, r->n);
    if (all == NULL) {
        return NULL;
    }
    PyObject *out = PyUnicode_FromFormat("RawLevels(%R)", all);
    Py_DECREF(all);
    return out;
}

static PySequenceMethods RawLevels_as_sequence = {
    .sq_length = (lenfunc)RawLevels_len,
    .sq_item = (ssizeargfunc)RawLevels_item,
};

static PyMappingMethods RawLevels_as_mapping = {
    .mp_length = (lenfunc)RawLevels_len,
    .mp_subscript = (binaryfunc)RawLevels_subscript,
};

static PyTypeObject RawLevelsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed._cbook.RawLevels",
    .tp_basicsize = sizeof(RawLevelsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_SEQUENCE,
    .tp_doc = "Book levels as raw text in a frame: a read-only sequence of (price, size) str\n"
              "tuples, made on access (from a venue plugin's C parser; see _cbook.c).",
    .tp_dealloc = (destructor)RawLevels_dealloc,
    .tp_repr = (reprfunc)RawLevels_repr,
    .tp_as_sequence = &RawLevels_as_sequence,
    .tp_as_mapping = &RawLevels_as_mapping,
};

/* Side.load's fast path: levels raw[:count], or (raw NULL) items[:count] as level_text
 * reads them, with plain texts, sizes > 0 and prices strictly sorted best first (the
 * texts copied into the levels). 1 loaded, 0 not taken (the side left empty), -1 error. */
static int
side_load_fast(SideObject *s, PyObject **items, const raw_level *raw, Py_ssize_t count)
{
    if (side_room(s, count, 16) < 0) {
        return -1;
    }
    Level *b = LV(s);
    for (Py_ssize_t n = 0; n < count; n++) {
        const char *p, *z;
        Py_ssize_t pn, zn;
        PyObject *pxo, *szo;
        double f;
        /* (level_text checked a raw size's text already) */
        if (level_text(raw, items, n, &p, &pn, &pxo, &z, &zn, &szo) < 0 ||
            parse_price_ascii(p, pn, &f) < 0 || (raw == NULL && !plain_text(z, zn)) ||
            size_zero_ascii(z, zn) != 0) {
            side_clear_levels(s);
            return 0;
        }
        f = s->neg ? -f : f;
        if (n && !(b[n - 1].key < f)) {
            side_clear_levels(s);
            return 0;
        }
        b[n].key = f;
        b[n].flen = 0;
        if (lv_set(&b[n].px, &b[n].pxn, pxo, p, pn) < 0) {
            side_clear_levels(s);
            return -1;
        }
        if (lv_set(&b[n].sz, &b[n].szn, szo, z, zn) < 0) {
            lv_release(&b[n].px, b[n].pxn);
            side_clear_levels(s);
            return -1;
        }
        s->len = n + 1;
    }
    return 1;
}

static PyObject *side_load_python(SideObject *s, PyObject *levels);

static PyObject *
Side_load(SideObject *s, PyObject *levels)
{
    side_clear_levels(s);
    PyObject *list = NULL; /* RawLevels not taken: as (price, size) str tuples */
    if (Py_IS_TYPE(levels, &RawLevelsType)) {
        RawLevelsObject *r = (RawLevelsObject *)levels;
        int rc = side_load_fast(s, NULL, r->v, r->n);
        if (rc != 0) {
            return rc < 0 ? NULL : Py_NewRef(Py_None);
        }
        if ((list = raw_to_list(r->v, r->n)) == NULL) {
            return NULL;
        }
        levels = list;
    }
    else if (PyList_CheckExact(levels) || PyTuple_CheckExact(levels)) {
        int rc = side_load_fast(s, PySequence_Fast_ITEMS(levels), NULL,
                                PySequence_Fast_GET_SIZE(levels));
        if (rc != 0) {
            return rc < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    PyObject *out = side_load_python(s, levels);
    Py_XDECREF(list);
    return out;
}

/* Side.load of levels the fast path does not take: Python's _Side loads them, then the
 * levels come back into the array (unless in exact mode). */
static PyObject *
side_load_python(SideObject *s, PyObject *levels)
{
    /* any other snapshot: Python loads it, then the levels come back */
    if (py_side_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "marketfeed._cbook.Side: _Side not registered");
        return NULL;
    }
    PyObject *py = PyObject_CallOneArg(py_side_type, s->neg ? Py_True : Py_False);
    if (py == NULL) {
        return NULL;
    }
    s->py = py;
    PyObject *r = PyObject_CallMethodOneArg(py, S_LOAD, levels);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    if (side_from_python(s) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Side_apply_doc,
"apply(levels, watch, /) -> bool\n\n"
"Apply delta levels (a zero size deletes): whether an operation landed in the top\n"
"``watch`` levels. As ``_apply_side_py`` on a ``_Side``, errors included.");

static PyObject *
Side_apply(SideObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply() takes 2 arguments");
        return NULL;
    }
    PyObject *levels = args[0];
    Py_ssize_t watch = PyNumber_AsSsize_t(args[1], NULL);
    if (watch == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (s->py != NULL || !(PyList_CheckExact(levels) || PyTuple_CheckExact(levels))) {
        return side_apply_python(s, levels, 0, watch);
    }
    Py_ssize_t n;
    int dirty;
    int rc = side_apply(s, levels, NULL, NULL, PySequence_Fast_GET_SIZE(levels), watch, &n,
                        &dirty);
    if (rc < 0) {
        return NULL;
    }
    if (rc > 0) {
        PyObject *r = side_apply_python(s, levels, n, watch);
        if (r == NULL || !dirty) {
            return r;
        }
        Py_DECREF(r);
    }
    return PyBool_FromLong(dirty);
}

PyDoc_STRVAR(Side_columns_doc,
"columns(n=None, /) -> tuple[list[str], list[str]]\n\n"
"``(prices, sizes)`` of the top ``n`` levels (all when ``None``), best first: new lists.");

static PyObject *
Side_columns(SideObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (s->py != NULL) {
        return PyObject_VectorcallMethod(S_COLUMNS, (PyObject *[]){s->py, nargs ? args[0] : Py_None}, 2, NULL);
    }
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "columns() takes at most 1 argument");
        return NULL;
    }
    Py_ssize_t n = slice_count(nargs ? args[0] : Py_None, s->len);
    if (n < 0) {
        return NULL;
    }
    PyObject *pxs = PyList_New(n), *szs = PyList_New(n);
    if (pxs == NULL || szs == NULL) {
        Py_XDECREF(pxs);
        Py_XDECREF(szs);
        return NULL;
    }
    Level *b = LV(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *px = lv_str_kept(&b[i].px, &b[i].pxn);
        PyObject *sz = px == NULL ? NULL : lv_str_kept(&b[i].sz, &b[i].szn);
        if (sz == NULL) {
            Py_XDECREF(px);
            Py_DECREF(pxs);
            Py_DECREF(szs);
            return NULL;
        }
        PyList_SET_ITEM(pxs, i, px);
        PyList_SET_ITEM(szs, i, sz);
    }
    return Py_BuildValue("(NN)", pxs, szs);
}

PyDoc_STRVAR(Side_head_doc,
"head() -> tuple[float | Decimal, str, str] | None\n\n"
"``(key, price, size)`` of the best level, or None when the side is empty.");

static PyObject *
Side_head(SideObject *s, PyObject *Py_UNUSED(arg))
{
    if (s->py != NULL) {
        return PyObject_CallMethodNoArgs(s->py, S_HEAD);
    }
    if (s->len == 0) {
        Py_RETURN_NONE;
    }
    Level *b = LV(s);
    PyObject *px = lv_str_kept(&b->px, &b->pxn);
    PyObject *sz = px == NULL ? NULL : lv_str_kept(&b->sz, &b->szn);
    if (sz == NULL) {
        Py_XDECREF(px);
        return NULL;
    }
    return Py_BuildValue("(dNN)", b->key, px, sz);
}

PyDoc_STRVAR(Side_pairs_doc,
"pairs(n, sep, /) -> list[str]\n\n"
"``price + sep + size`` of the top ``n`` levels, best first (a new list).");

static PyObject *
Side_pairs(SideObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pairs() takes 2 arguments");
        return NULL;
    }
    if (s->py != NULL) {
        return PyObject_VectorcallMethod(S_PAIRS, (PyObject *[]){s->py, args[0], args[1]}, 3, NULL);
    }
    Py_ssize_t n = PyNumber_AsSsize_t(args[0], NULL);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "pairs(): sep must be a str");
        return NULL;
    }
    if (n > s->len) {
        n = s->len;
    }
    if (n < 0) {
        n = 0;
    }
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    Level *b = LV(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *px = lv_str_kept(&b[i].px, &b[i].pxn);
        PyObject *sz = px == NULL ? NULL : lv_str_kept(&b[i].sz, &b[i].szn);
        PyObject *a = sz == NULL ? NULL : PyUnicode_Concat(px, args[1]);
        PyObject *p = a == NULL ? NULL : PyUnicode_Concat(a, sz);
        Py_XDECREF(px);
        Py_XDECREF(sz);
        Py_XDECREF(a);
        if (p == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, p);
    }
    return out;
}

PyDoc_STRVAR(Side_decimals_doc,
"decimals(n, cache, decimal, capacity, /) -> tuple[tuple[Decimal, Decimal], ...]\n\n"
"The top ``n`` levels (all when ``None``) as exact ``(price, size)`` Decimals, best first,\n"
"as ``_Side.decimals``: ``decimal_columns(*columns(n), None, cache, decimal, capacity)``\n"
"without the str lists (a plain text is read in place).");

static PyObject *Side_decimals(SideObject *s, PyObject *const *args, Py_ssize_t nargs);

static PyObject *
Side_forget_pairs(SideObject *s, PyObject *Py_UNUSED(arg))
{
    if (s->py != NULL) {
        return PyObject_CallMethodNoArgs(s->py, S_FORGET);
    }
    Py_RETURN_NONE;
}

static PyObject *
Side_get_exact(SideObject *s, void *Py_UNUSED(closure))
{
    if (s->py != NULL) {
        return PyObject_GetAttr(s->py, S_EXACT_ATTR);
    }
    Py_RETURN_FALSE;
}

static PyObject *
Side_get_neg(SideObject *s, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(s->neg);
}

static PyObject *
Side_get_keys(SideObject *s, void *Py_UNUSED(closure))
{
    if (s->py != NULL) {
        PyObject *keys = PyObject_GetAttr(s->py, S_KEYS_ATTR);
        if (keys == NULL) {
            return NULL;
        }
        PyObject *copy = PySequence_List(keys);
        Py_DECREF(keys);
        return copy;
    }
    PyObject *out = PyList_New(s->len);
    if (out == NULL) {
        return NULL;
    }
    Level *b = LV(s);
    for (Py_ssize_t i = 0; i < s->len; i++) {
        PyObject *k = PyFloat_FromDouble(b[i].key);
        if (k == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, k);
    }
    return out;
}

static PyObject *
Side_get_python(SideObject *s, void *Py_UNUSED(closure))
{
    return Py_NewRef(s->py != NULL ? s->py : Py_None);
}

static PyMethodDef Side_methods[] = {
    {"clear", (PyCFunction)Side_clear, METH_NOARGS, "clear() -> None\n\nDrop every level."},
    {"load", (PyCFunction)Side_load, METH_O, Side_load_doc},
    {"apply", (PyCFunction)(void (*)(void))Side_apply, METH_FASTCALL, Side_apply_doc},
    {"columns", (PyCFunction)(void (*)(void))Side_columns, METH_FASTCALL, Side_columns_doc},
    {"head", (PyCFunction)Side_head, METH_NOARGS, Side_head_doc},
    {"pairs", (PyCFunction)(void (*)(void))Side_pairs, METH_FASTCALL, Side_pairs_doc},
    {"decimals", (PyCFunction)(void (*)(void))Side_decimals, METH_FASTCALL, Side_decimals_doc},
    {"forget_pairs", (PyCFunction)Side_forget_pairs, METH_NOARGS,
     "forget_pairs() -> None\n\nDrop cached pair strings (none are kept here)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Side_getset[] = {
    {"exact", (getter)Side_get_exact, NULL, "Whether the side runs with Decimal keys (in Python).", NULL},
    {"neg", (getter)Side_get_neg, NULL, "Whether keys are negated prices (the bid side).", NULL},
    {"keys", (getter)Side_get_keys, NULL, "The sort keys, best first (a new list).", NULL},
    {"python", (getter)Side_get_python, NULL,
     "The pure-Python _Side holding the levels instead (exact mode), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Side_as_sequence = {
    .sq_length = (lenfunc)Side_len,
};

PyDoc_STRVAR(Side_doc,
"Side(neg)\n\n"
"One side of an L2 book in a C array, best first (bids: ``neg=True``). Same methods and\n"
"results as ``marketfeed._book._Side``; rare cases run in that pure-Python class.");

static PyTypeObject SideType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "marketfeed._cbook.Side",
    .tp_basicsize = sizeof(SideObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = Side_doc,
    .tp_new = Side_new,
    .tp_dealloc = (destructor)Side_dealloc,
    .tp_traverse = (traverseproc)Side_traverse,
    .tp_clear = (inquiry)Side_clear_gc,
    .tp_methods = Side_methods,
    .tp_getset = Side_getset,
    .tp_as_sequence = &Side_as_sequence,
};

/* ------------------------------------------------------------------ apply_delta */

/* L2Book.apply_delta in C works on the book's and its sides' __slots__ directly, at the
 * offsets their member descriptors give (register() reads and checks them: every one an
 * object slot), for L2Book itself only (a subclass may override what this inlines). */

#include <structmember.h>

enum {
    B_ASKS, B_BIDS, B_CHECKSUM, B_CK_VALUE, B_CK_VERSION, B_LAST_UPDATE, B_MEMO, B_SEQ_RULE,
    B_UPDATES, B_VALID, B_VERSION, B_WATCH, B_CHECK_CROSSED, B_LAST_CHECKSUM,
    B_LAST_EVENT_TIME, B_SEQUENCE, B_SYMBOL, B_VERIFIED, B_COUNT
};
static const char *const BOOK_SLOTS[B_COUNT] = {
    "_asks", "_bids", "_checksum", "_ck_value", "_ck_version", "_last_update", "_memo",
    "_seq_rule", "_updates", "_valid", "_version", "_watch", "check_crossed", "last_checksum",
    "last_event_time", "sequence", "symbol", "verified",
};
static PyTypeObject *book_type;
static Py_ssize_t book_off[B_COUNT];

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* bool(a op b), as Python's operator (no identity shortcut); -1 on error. */
static int
compare(PyObject *a, PyObject *b, int op)
{
    PyObject *r = PyObject_RichCompare(a, b, op);
    if (r == NULL) {
        return -1;
    }
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

static int
slot_offsets(PyTypeObject *type, const char *const *names, int count, Py_ssize_t *out)
{
    for (int i = 0; i < count; i++) {
        PyObject *d = PyDict_GetItemString(type->tp_dict, names[i]); /* borrowed */
        if (d == NULL || !Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            return -1;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY) || m->offset <= 0 ||
            m->offset + (Py_ssize_t)sizeof(PyObject *) > type->tp_basicsize) {
            return -1;
        }
        out[i] = m->offset;
    }
    return 0;
}

PyDoc_STRVAR(register_doc,
"register(book_type, side_type, apply_side, /) -> bool\n\n"
"Enable apply_delta for exactly L2Book (whether its slots were found) and give ``Side`` the\n"
"pure-Python ``_Side`` class and ``_apply_side_py``, which run its rare cases.");

static PyObject *
register_types(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyCallable_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "register() takes two types and a function");
        return NULL;
    }
    Py_CLEAR(book_type);
    Py_XSETREF(py_side_type, Py_NewRef(args[1]));
    Py_XSETREF(py_apply, Py_NewRef(args[2]));
    PyTypeObject *bt = (PyTypeObject *)args[0];
    if (slot_offsets(bt, BOOK_SLOTS, B_COUNT, book_off) < 0) {
        Py_RETURN_FALSE; /* apply_delta then always hands back */
    }
    Py_INCREF(bt);
    book_type = bt;
    Py_RETURN_TRUE;
}

/* obj.slot = value (new reference taken to value). */
static void
slot_set(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    Py_INCREF(value);
    Py_XSETREF(SLOT(obj, off), value);
}

/* obj.slot += 1 for an int slot; -1 on error. */
static int
slot_incr(PyObject *obj, Py_ssize_t off)
{
    PyObject *v = PyNumber_Add(SLOT(obj, off), ONE);
    if (v == NULL) {
        return -1;
    }
    Py_XSETREF(SLOT(obj, off), v);
    return 0;
}

/* Whether apply_delta can work on a side itself: a Side with its levels in the array. */
static inline int
side_ok(PyObject *side)
{
    return Py_IS_TYPE(side, &SideType) && ((SideObject *)side)->py == NULL;
}

static PyObject *S_NONE, *S_LINKED, *S_CONTIGUOUS;

/* Crc32Checksum (marketfeed._book): a checksum function object that apply_delta computes
 * here, without calling it, from its slots (depth, sep, signed) and the sides' columns. */
enum { K_DEPTH, K_SEP, K_SIGNED, K_COUNT };
static const char *const CRC_SLOTS[K_COUNT] = {"depth", "sep", "signed"};
static PyTypeObject *crc_type;
static Py_ssize_t crc_off[K_COUNT];

static const char *utf8_of(PyObject *s, Py_ssize_t *len);
static int crc_core(PyObject *const *bp, PyObject *const *bs, Py_ssize_t nb,
                    PyObject *const *ap, PyObject *const *as, Py_ssize_t na, Py_ssize_t stride,
                    Py_ssize_t n, const char *sep, Py_ssize_t seplen, uint32_t *out);

static int crc_sides_fast(SideObject *b, SideObject *a, Py_ssize_t n, unsigned char sep,
                          uint32_t *out);

/* CRC32 of the top n levels of two Sides in array mode, interleaved and joined: from the
 * levels' cached fragments where the CPU allows it (crc_sides_fast), else over the text. */
static int
crc_sides(SideObject *b, SideObject *a, Py_ssize_t n, const char *sep, Py_ssize_t seplen,
          uint32_t *out)
{
    if (seplen == 1 && crc_sides_fast(b, a, n, (unsigned char)sep[0], out) == 0) {
        return 0;
    }
    /* the text path (rare: no PCLMULQDQ, a longer separator, a text that is not ASCII):
     * the top levels' texts as str, then crc_core over them */
    SideObject *sides[2] = {b, a};
    Py_ssize_t cnt[2];
    PyObject **cols[2] = {NULL, NULL};
    int rc = -1;
    for (int k = 0; k < 2; k++) {
        cnt[k] = sides[k]->len < n ? sides[k]->len : (n < 0 ? 0 : n);
        cols[k] = PyMem_Calloc((size_t)(2 * cnt[k] + 1), sizeof(PyObject *));
        if (cols[k] == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        Level *l = LV(sides[k]);
        for (Py_ssize_t i = 0; i < cnt[k]; i++) {
            if ((cols[k][i] = lv_str(&l[i].px, l[i].pxn)) == NULL ||
                (cols[k][cnt[k] + i] = lv_str(&l[i].sz, l[i].szn)) == NULL) {
                goto done;
            }
        }
    }
    rc = crc_core(cols[0], cols[0] + cnt[0], cnt[0], cols[1], cols[1] + cnt[1], cnt[1], 1, n,
                  sep, seplen, out);
done:
    for (int k = 0; k < 2; k++) {
        if (cols[k] != NULL) {
            for (Py_ssize_t i = 0; i < 2 * cnt[k]; i++) {
                Py_XDECREF(cols[k][i]);
            }
            PyMem_Free(cols[k]);
        }
    }
    return rc;
}

/* fn(book) for a Crc32Checksum fn over sides that passed side_ok: a new int, or NULL
 * (an error set or not) when Python must call fn itself (depth beyond the watched top, so
 * crc32_pairs must raise it; a slot of another type; a text that is not UTF-8). */
static PyObject *
crc_direct(PyObject *fn, PyObject *b, PyObject *a, Py_ssize_t watch)
{
    PyObject *depth = SLOT(fn, crc_off[K_DEPTH]), *sep = SLOT(fn, crc_off[K_SEP]);
    PyObject *sgn = SLOT(fn, crc_off[K_SIGNED]);
    if (depth == NULL || sep == NULL || sgn == NULL || !PyLong_CheckExact(depth) ||
        !PyUnicode_CheckExact(sep) || !PyBool_Check(sgn)) {
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(depth);
    if (n < 0 || n > watch) {
        return NULL;
    }
    Py_ssize_t seplen;
    const char *s = utf8_of(sep, &seplen);
    uint32_t crc;
    if (s == NULL ||
        crc_sides((SideObject *)b, (SideObject *)a, n, s, seplen, &crc) < 0) {
        return NULL;
    }
    if (sgn == Py_True && (crc & 0x80000000u)) {
        return PyLong_FromLongLong((long long)crc - 0x100000000LL);
    }
    return PyLong_FromUnsignedLong((unsigned long)crc);
}

PyDoc_STRVAR(apply_delta_doc,
"apply_delta(book, bids, asks, sequence, prev_sequence, checksum, time, event_time, /)\n"
"    -> bool | tuple[int, int, bool, bool] | None\n\n"
"``L2Book.apply_delta`` in C for the common case. Returns its result (``verified``) when\n"
"it did it all; ``None`` when it changed nothing and Python must do it all (a book that is\n"
"invalid or not an L2Book, a sequence failure, an exact-mode side, levels that are not a\n"
"list/tuple); or ``(stage, n, dirty, seq_checked)`` when Python must finish it\n"
"(``L2Book._finish_delta``): stage 0: bid levels from ``n`` on, then the asks; stage 1:\n"
"ask levels from ``n`` on; stage 2: both sides applied, the checks after them (a possible\n"
"crossed book, a checksum mismatch or a checksum function that raised) are Python's.");

/* apply_delta's work on its 8 arguments; with raw (not NULL) the levels are raw_b[:nb]
 * and raw_a[:na] instead of args[1] and args[2] (which are then ignored), and pre_b,
 * pre_a (or NULL) what raw_decimal_levels read of them. */
static PyObject *
apply_delta_impl(PyObject *const *args, const raw_level *raw_b, const raw_parsed *pre_b,
                 Py_ssize_t nb, const raw_level *raw_a, const raw_parsed *pre_a, Py_ssize_t na,
                 int raw)
{
    PyObject *book = args[0], *bids = args[1], *asks = args[2], *sequence = args[3];
    PyObject *prev_sequence = args[4], *checksum = args[5], *time = args[6];
    PyObject *event_time = args[7];
    if (book_type == NULL || !Py_IS_TYPE(book, book_type)) {
        Py_RETURN_NONE;
    }
    if (!raw) {
        if (!(PyList_CheckExact(bids) || PyTuple_CheckExact(bids)) ||
            !(PyList_CheckExact(asks) || PyTuple_CheckExact(asks))) {
            Py_RETURN_NONE;
        }
        nb = PySequence_Fast_GET_SIZE(bids);
        na = PySequence_Fast_GET_SIZE(asks);
    }
    for (int i = 0; i < B_COUNT; i++) {
        if (SLOT(book, book_off[i]) == NULL) {
            Py_RETURN_NONE;
        }
    }
    PyObject *b = SLOT(book, book_off[B_BIDS]), *a = SLOT(book, book_off[B_ASKS]);
    if (SLOT(book, book_off[B_VALID]) != Py_True || !side_ok(b) || !side_ok(a) ||
        !PyLong_CheckExact(SLOT(book, book_off[B_WATCH]))) {
        Py_RETURN_NONE;
    }
    Py_ssize_t watch = PyLong_AsSsize_t(SLOT(book, book_off[B_WATCH]));
    if (watch == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    /* the sequence rule, checked before anything changes */
    PyObject *rule = SLOT(book, book_off[B_SEQ_RULE]);
    int seq_checked = 0;
    if (!PyUnicode_CheckExact(rule)) {
        Py_RETURN_NONE;
    }
    if (PyUnicode_Compare(rule, S_NONE) != 0) {
        PyObject *last = SLOT(book, book_off[B_SEQUENCE]);
        if (last != Py_None) {
            int bad;
            if (PyUnicode_Compare(rule, S_LINKED) == 0) {
                bad = compare(prev_sequence, last, Py_NE);
            }
            else if (PyUnicode_Compare(rule, S_CONTIGUOUS) == 0 && sequence != Py_None) {
                PyObject *next = PyNumber_Add(last, ONE);
                bad = next == NULL ? -1 : compare(sequence, next, Py_NE);
                Py_XDECREF(next);
            }
            else {
                bad = 1; /* contiguous without a sequence (or an unknown rule) */
            }
            if (bad != 0) { /* Python raises the failure (or the error) itself */
                PyErr_Clear();
                Py_RETURN_NONE;
            }
            seq_checked = 1;
        }
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    /* from here on the book changes: anything left goes to L2Book._finish_delta */
    if (sequence != Py_None) {
        slot_set(book, book_off[B_SEQUENCE], sequence);
    }
    int dirty = 0, d = 0;
    Py_ssize_t n = 0;
    if (nb) {
        int rc = side_apply((SideObject *)b, bids, raw ? raw_b : NULL, raw ? pre_b : NULL, nb,
                            watch, &n, &d);
        if (rc < 0) {
            return NULL;
        }
        if (rc > 0) {
            return Py_BuildValue("(inOO)", 0, n, d ? Py_True : Py_False,
                                 seq_checked ? Py_True : Py_False);
        }
        dirty = d;
    }
    if (na) {
        int rc = side_apply((SideObject *)a, asks, raw ? raw_a : NULL, raw ? pre_a : NULL, na,
                            watch, &n, &d);
        if (rc < 0) {
            return NULL;
        }
        if (rc > 0) {
            return Py_BuildValue("(inOO)", 1, n, (dirty || d) ? Py_True : Py_False,
                                 seq_checked ? Py_True : Py_False);
        }
        dirty = dirty || d;
    }
#define HANDBACK_CHECKS()                                                                     \
    return Py_BuildValue("(inOO)", 2, (Py_ssize_t)0, dirty ? Py_True : Py_False,              \
                         seq_checked ? Py_True : Py_False)
    if (dirty) {
        PyObject *crossed = SLOT(book, book_off[B_CHECK_CROSSED]);
        if (!PyBool_Check(crossed)) {
            HANDBACK_CHECKS(); /* its truth could run Python code: Python asks it */
        }
        if (crossed == Py_True) {
            SideObject *bs = (SideObject *)b, *as = (SideObject *)a;
            if (bs->len && as->len && -LV(bs)->key >= LV(as)->key) {
                HANDBACK_CHECKS(); /* maybe crossed: Python compares the decimals */
            }
        }
        if (slot_incr(book, book_off[B_VERSION]) < 0) {
            return NULL;
        }
        dirty = 0; /* the version is bumped: Python must not bump it again */
    }
    int verified = seq_checked;
    PyObject *fn = SLOT(book, book_off[B_CHECKSUM]);
    if (checksum != Py_None && fn != Py_None) {
        PyObject *computed = NULL;
        PyObject *memo = SLOT(book, book_off[B_MEMO]);
        if (!PyBool_Check(memo)) {
            HANDBACK_CHECKS();
        }
        if (memo == Py_True) {
            int same = compare(SLOT(book, book_off[B_CK_VERSION]),
                               SLOT(book, book_off[B_VERSION]), Py_EQ);
            if (same < 0) {
                return NULL;
            }
            if (same) {
                computed = SLOT(book, book_off[B_CK_VALUE]);
                Py_INCREF(computed);
            }
        }
        if (computed == NULL) {
            if (crc_type != NULL && Py_IS_TYPE(fn, crc_type)) {
                computed = crc_direct(fn, b, a, watch);
                PyErr_Clear(); /* NULL: fn(book) below does it (and raises it) */
            }
            if (computed == NULL) {
                computed = PyObject_CallOneArg(fn, book);
            }
            if (computed == NULL || !PyLong_CheckExact(computed)) {
                /* raised, or not an int: Python calls it again (a pure function of the
                 * top levels) and reports or converts it */
                Py_XDECREF(computed);
                PyErr_Clear();
                HANDBACK_CHECKS();
            }
            slot_set(book, book_off[B_CK_VALUE], computed);
            slot_set(book, book_off[B_CK_VERSION], SLOT(book, book_off[B_VERSION]));
        }
        int ne = compare(computed, checksum, Py_NE);
        Py_DECREF(computed);
        if (ne != 0) {
            PyErr_Clear();
            HANDBACK_CHECKS(); /* a mismatch: Python raises it */
        }
        verified = 1;
    }
#undef HANDBACK_CHECKS
    if (slot_incr(book, book_off[B_UPDATES]) < 0) {
        return NULL;
    }
    slot_set(book, book_off[B_LAST_CHECKSUM], checksum);
    slot_set(book, book_off[B_LAST_EVENT_TIME], event_time);
    slot_set(book, book_off[B_LAST_UPDATE], time);
    PyObject *v = verified ? Py_True : Py_False;
    slot_set(book, book_off[B_VERIFIED], v);
    Py_INCREF(v);
    return v;
}

static PyObject *
apply_delta(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "apply_delta() takes 8 arguments");
        return NULL;
    }
    return apply_delta_impl(args, NULL, NULL, 0, NULL, NULL, 0, 0);
}

/* ------------------------------------------------------------------ CRC32 */

static uint32_t crc_table[8][256];

static void
crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = crc_table[0][i];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xFF] ^ (c >> 8);
            crc_table[t][i] = c;
        }
    }
}

/* Running CRC32 (zlib's: reflected 0xEDB88320) over buf; `crc` is the inverted state. */
static uint32_t
crc_update(uint32_t crc, const unsigned char *buf, Py_ssize_t len)
{
    while (len >= 8) {
        uint32_t lo = crc ^ ((uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 |
                             (uint32_t)buf[3] << 24);
        uint32_t hi = (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 |
                      (uint32_t)buf[7] << 24;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
              crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
              crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        buf += 8;
        len -= 8;
    }
    while (len-- > 0) {
        crc = crc_table[0][(crc ^ *buf++) & 0xFF] ^ (crc >> 8);
    }
    return crc;
}

/* ---- the checksum from per-level fragments
 *
 * CRC32 is linear: running the register c over a text M gives shift(c, |M|) ^ R(M), where
 * shift(c, n) is c run over n zero bytes (c * x^(8n) mod P) and R(M) the register run
 * over M from 0. The checksum text is S0 sep S1 sep ... (Sj = "px sep sz" of the levels,
 * bid/ask interleaved), so with each level's fragment F = R(sep Sj) and length L cached,
 * the register is c = shift(c, L) ^ F per level, from the c whose run over one sep byte
 * gives zlib's initial 0xFFFFFFFF. A level's fragment is computed again only after it
 * changed, so no level text is read for the levels that did not change.
 *
 * Unrolled, c = shift(c0, T) ^ XOR_j shift(F_j, S_j), with T the whole text's length and
 * S_j the length of the text after level j. crc_sides_fast walks the levels last first,
 * so S_j is a running sum, and shift(F, S) is one carry-less multiply (PCLMULQDQ) by
 * x^(8S) mod P from a table. Reduction mod P is linear too, so the 64-bit products are
 * XORed unreduced and reduced once: the multiplies do not wait for one another (a
 * multiply and reduction per level in turn took ~30 cycles a level, the 2021 capture's
 * whole checksum). Texts longer than the table go in chunks, each reduced and shifted
 * by its offset from the end. */

#define CRC_MAXSEG 96 /* longest fragment text taken (longer: the text path) */
#define CRC_CHUNK 1024 /* the longest offset from a chunk's end read from the table */
static uint32_t crc_xpow[CRC_CHUNK + CRC_MAXSEG]; /* x^(8n) mod P, reflected */
static uint32_t crc_pre[256];             /* per sep byte: the register before the first */
static int crc_clmul;                     /* the CPU has PCLMULQDQ */

static void
crc_fast_init(void)
{
    uint32_t c = 0x80000000u; /* x^0, reflected */
    for (int n = 0; n < CRC_CHUNK + CRC_MAXSEG; n++) {
        crc_xpow[n] = c;
        c = crc_table[0][c & 0xFF] ^ (c >> 8); /* one more zero byte */
    }
    int top = -1; /* the table entry whose top byte is 0xFF (the top bytes are distinct) */
    for (int i = 0; i < 256; i++) {
        if ((crc_table[0][i] >> 24) == 0xFF) {
            top = i;
        }
    }
    for (int sep = 0; sep < 256; sep++) {
        /* c with T[(c ^ sep) & 0xFF] ^ (c >> 8) == 0xFFFFFFFF */
        crc_pre[sep] = ((0xFFFFFFFFu ^ crc_table[0][top]) << 8) | (uint32_t)(top ^ sep);
    }
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    crc_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
}

static inline uint32_t
crc_run(uint32_t c, const unsigned char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        c = crc_table[0][(c ^ s[i]) & 0xFF] ^ (c >> 8);
    }
    return c;
}

/* The level's fragment for sep (computed if need be): 0, or -1 when the level is not
 * taken here (a text that is not compact ASCII, or too long). */
static inline int
level_frag(Level *l, unsigned char sep)
{
    if (l->flen) {
        return 0;
    }
    Py_ssize_t pn, zn;
    const char *px = lv_text(&l->px, l->pxn, &pn);
    const char *sz = px == NULL ? NULL : lv_text(&l->sz, l->szn, &zn);
    if (sz == NULL || pn + zn + 2 > CRC_MAXSEG) {
        return -1;
    }
    uint32_t c = crc_table[0][sep]; /* R(sep) from 0 */
    c = crc_run(c, (const unsigned char *)px, pn);
    c = crc_table[0][(c ^ sep) & 0xFF] ^ (c >> 8);
    c = crc_run(c, (const unsigned char *)sz, zn);
    l->frag = c;
    l->flen = (uint32_t)(pn + zn + 2);
    return 0;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* The carry-less product of two 32-bit values (63 bits). */
__attribute__((target("pclmul,sse4.1"))) static inline uint64_t
crc_clmul32(uint32_t c, uint32_t k)
{
    __m128i p = _mm_clmulepi64_si128(_mm_cvtsi32_si128((int)c), _mm_cvtsi32_si128((int)k), 0);
    return (uint64_t)_mm_cvtsi128_si64(p);
}

/* A (XOR of) carry-less product(s) of reflected values mod P: shifted into place, its
 * low half reduced by running it over 4 zero bytes. */
static inline uint32_t
crc_reduce(uint64_t p)
{
    uint64_t v = p << 1;
    uint32_t lo = (uint32_t)v;
    lo = crc_table[0][lo & 0xFF] ^ (lo >> 8);
    lo = crc_table[0][lo & 0xFF] ^ (lo >> 8);
    lo = crc_table[0][lo & 0xFF] ^ (lo >> 8);
    lo = crc_table[0][lo & 0xFF] ^ (lo >> 8);
    return (uint32_t)(v >> 32) ^ lo;
}

/* c * k mod P (reflected). */
__attribute__((target("pclmul,sse4.1"))) static inline uint32_t
crc_mul(uint32_t c, uint32_t k)
{
    return crc_reduce(crc_clmul32(c, k));
}

/* The CRC32 of the top n levels of two Sides from their fragments: 0 with *out set, or 1
 * when not done here (no PCLMULQDQ, a level not taken by level_frag): the text path then.
 * The text interleaves the sides (bid 0, ask 0, bid 1, ...; the longer side goes on
 * alone); it is walked from its end (see above). */
__attribute__((target("pclmul,sse4.1"))) static int
crc_sides_fast(SideObject *b, SideObject *a, Py_ssize_t n, unsigned char sep, uint32_t *out)
{
    if (!crc_clmul) {
        return 1;
    }
    SideObject *sides[2] = {b, a};
    Py_ssize_t cnt[2];
    for (int k = 0; k < 2; k++) {
        SideObject *s = sides[k];
        if (s->frag_sep != sep) { /* computed for another separator: compute again */
            Level *l = LV(s);
            for (Py_ssize_t i = 0; i < s->len; i++) {
                l[i].flen = 0;
            }
            s->frag_sep = sep;
        }
        cnt[k] = s->len < n ? s->len : n;
        if (cnt[k] < 0) {
            cnt[k] = 0;
        }
    }
    Py_ssize_t m = cnt[0] > cnt[1] ? cnt[0] : cnt[1];
    if (m == 0) {
        *out = 0; /* the empty text */
        return 0;
    }
    Level *lb = LV(b), *la = LV(a);
    uint64_t acc = 0;          /* this chunk: XOR of F_j * x^(8 s_j), unreduced */
    uint32_t off = 0;          /* s: the text's length from here to the chunk's end */
    uint32_t res = 0;          /* the chunks done, shifted to the text's end, reduced */
    uint32_t kbase = 0x80000000u; /* x^(8 B) mod P, B the chunk's end to the text's end */
    for (Py_ssize_t i = m - 1; i >= 0; i--) {
        for (int k = 1; k >= 0; k--) { /* the ask follows the bid in the text */
            if (i >= cnt[k]) {
                continue;
            }
            Level *l = (k ? la : lb) + i;
            if (level_frag(l, sep) < 0) {
                return 1;
            }
            if (off >= CRC_CHUNK) { /* the table ends: close the chunk */
                res ^= crc_mul(crc_reduce(acc), kbase);
                kbase = crc_mul(kbase, crc_xpow[off]);
                acc = 0;
                off = 0;
            }
            acc ^= crc_clmul32(l->frag, crc_xpow[off]);
            off += l->flen;
        }
    }
    uint32_t last = crc_reduce(acc);
    if (kbase != 0x80000000u) {
        last = crc_mul(last, kbase);
    }
    res ^= last;
    kbase = crc_mul(kbase, crc_xpow[off]); /* x^(8T) */
    *out = (crc_mul(crc_pre[sep], kbase) ^ res) ^ 0xFFFFFFFFu;
    return 0;
}
#else
static int
crc_sides_fast(SideObject *b, SideObject *a, Py_ssize_t n, unsigned char sep, uint32_t *out)
{
    return 1;
}
#endif

/* UTF-8 bytes of a str (as str.encode() would give; raises for lone surrogates). */
static const char *
utf8_of(PyObject *s, Py_ssize_t *len)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "expected str instance, %.80s found", Py_TYPE(s)->tp_name);
        return NULL;
    }
    if (PyUnicode_IS_COMPACT_ASCII(s)) {
        *len = PyUnicode_GET_LENGTH(s);
        return (const char *)PyUnicode_DATA(s);
    }
    return PyUnicode_AsUTF8AndSize(s, len);
}

/* Text buffer: the joined text is assembled here, then checksummed in one pass (a pass per
 * short string would be bound by the latency of the byte-wise table lookups). */
typedef struct {
    unsigned char *data;
    Py_ssize_t len, cap;
    unsigned char local[4096];
} textbuf;

/* Make room for `more` bytes (rarely needed: the local buffer takes 4 KiB). */
static int
buf_grow(textbuf *b, Py_ssize_t more)
{
    Py_ssize_t cap = (b->len + more) * 2;
    unsigned char *mem;
    if (b->data == b->local) {
        mem = PyMem_Malloc((size_t)cap);
        if (mem != NULL) {
            memcpy(mem, b->data, (size_t)b->len);
        }
    }
    else {
        mem = PyMem_Realloc(b->data, (size_t)cap);
    }
    if (mem == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = mem;
    b->cap = cap;
    return 0;
}

static inline int
buf_add(textbuf *b, const char *data, Py_ssize_t len)
{
    if (b->len + len > b->cap && buf_grow(b, len) < 0) {
        return -1;
    }
    unsigned char *dst = b->data + b->len;
    /* prices, sizes, separators: a call to memcpy or a byte loop costs more than two
     * fixed-size (overlapping) copies, which read and write only [0, len) */
    if (len >= 8 && len <= 16) {
        memcpy(dst, data, 8);
        memcpy(dst + len - 8, data + len - 8, 8);
    }
    else if (len >= 4 && len < 8) {
        memcpy(dst, data, 4);
        memcpy(dst + len - 4, data + len - 4, 4);
    }
    else if (len < 4) {
        for (Py_ssize_t i = 0; i < len; i++) {
            dst[i] = (unsigned char)data[i];
        }
    }
    else {
        memcpy(dst, data, (size_t)len);
    }
    b->len += len;
    return 0;
}

/* Append the UTF-8 bytes of a str. */
static inline int
buf_str(textbuf *b, PyObject *item)
{
    Py_ssize_t len;
    const char *data = utf8_of(item, &len);
    if (data == NULL) {
        return -1;
    }
    return buf_add(b, data, len);
}

PyDoc_STRVAR(crc32_pairs_doc,
"crc32_pairs(bid_pxs, bid_szs, ask_pxs, ask_szs, n, sep, /) -> int\n\n"
"Unsigned CRC32 (zlib's) of the UTF-8 text ``bp0 sep bs0 sep ap0 sep as0 sep bp1 ...``:\n"
"the top ``n`` levels of each side interleaved bid/ask, every string joined with ``sep``;\n"
"where one side is shorter the other continues alone. No Python string is built.");


/* CRC32 (unsigned, zlib's) of the top n levels of two sides given as columns of str:
 * prices bp[i * stride], sizes bs[i * stride] (i < nb) and likewise for the asks,
 * interleaved bid/ask and joined with sep. 0 with
 * *out set, -1 with an exception. */
static int
crc_core(PyObject *const *bp, PyObject *const *bs, Py_ssize_t nb, PyObject *const *ap,
         PyObject *const *as, Py_ssize_t na, Py_ssize_t stride, Py_ssize_t n, const char *sep,
         Py_ssize_t seplen, uint32_t *out)
{
    if (n < 0) {
        n = 0;
    }
    if (nb > n) {
        nb = n;
    }
    if (na > n) {
        na = n;
    }
    textbuf b;
    b.data = b.local;
    b.len = 0;
    b.cap = (Py_ssize_t)sizeof(b.local);
    Py_ssize_t m = nb > na ? nb : na;
    /* the strings are separate objects, often not in the cache: ask for all of them at
     * once, so their loads overlap instead of one miss after another */
    for (Py_ssize_t i = 0; i < nb; i++) {
        __builtin_prefetch(bp[i * stride]);
        __builtin_prefetch(bs[i * stride]);
    }
    for (Py_ssize_t i = 0; i < na; i++) {
        __builtin_prefetch(ap[i * stride]);
        __builtin_prefetch(as[i * stride]);
    }
    int first = 1;
    for (Py_ssize_t i = 0; i < m; i++) {
        /* items are read as we go: borrowed, and nothing here runs Python code */
        for (int side = 0; side < 2; side++) {
            if (i >= (side ? na : nb)) {
                continue;
            }
            PyObject *px = (side ? ap : bp)[i * stride];
            PyObject *sz = (side ? as : bs)[i * stride];
            if (seplen == 1 && PyUnicode_Check(px) && PyUnicode_Check(sz) &&
                PyUnicode_IS_COMPACT_ASCII(px) && PyUnicode_IS_COMPACT_ASCII(sz)) {
                /* the common case: ASCII texts of up to 16 bytes and a 1-byte separator */
                Py_ssize_t pn = PyUnicode_GET_LENGTH(px), zn = PyUnicode_GET_LENGTH(sz);
                if (pn <= 16 && zn <= 16 && b.len + 34 <= b.cap) {
                    unsigned char *d = b.data + b.len;
                    if (!first) {
                        *d++ = (unsigned char)sep[0];
                    }
                    copy_short(d, (const char *)PyUnicode_DATA(px), pn);
                    d += pn;
                    *d++ = (unsigned char)sep[0];
                    copy_short(d, (const char *)PyUnicode_DATA(sz), zn);
                    b.len = d + zn - b.data;
                    first = 0;
                    continue;
                }
            }
            if ((!first && buf_add(&b, sep, seplen) < 0) || buf_str(&b, px) < 0 ||
                buf_add(&b, sep, seplen) < 0 || buf_str(&b, sz) < 0) {
                if (b.data != b.local) {
                    PyMem_Free(b.data);
                }
                return -1;
            }
            first = 0;
        }
    }
    uint32_t crc = crc_update(0xFFFFFFFFu, b.data, b.len);
    if (b.data != b.local) {
        PyMem_Free(b.data);
    }
    *out = crc ^ 0xFFFFFFFFu;
    return 0;
}

/* crc_core over four lists of str. */
static int
crc_pairs_compute(PyObject *bp, PyObject *bs, PyObject *ap, PyObject *as, Py_ssize_t n,
                  const char *sep, Py_ssize_t seplen, uint32_t *out)
{
    Py_ssize_t nb = PyList_GET_SIZE(bp), na = PyList_GET_SIZE(ap);
    if (PyList_GET_SIZE(bs) < nb) {
        nb = PyList_GET_SIZE(bs);
    }
    if (PyList_GET_SIZE(as) < na) {
        na = PyList_GET_SIZE(as);
    }
    return crc_core(((PyListObject *)bp)->ob_item, ((PyListObject *)bs)->ob_item, nb,
                    ((PyListObject *)ap)->ob_item, ((PyListObject *)as)->ob_item, na, 1, n,
                    sep, seplen, out);
}

PyDoc_STRVAR(crc32_sides_doc,
"crc32_sides(bids, asks, n, sep, /) -> int | None\n\n"
"``crc32_pairs`` over two ``Side`` objects with their levels in the C array; ``None`` for\n"
"any other sides (the caller then reads their columns).");

static PyObject *
crc32_sides(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "crc32_sides() takes 4 arguments");
        return NULL;
    }
    if (!side_ok(args[0]) || !side_ok(args[1])) {
        Py_RETURN_NONE;
    }
    Py_ssize_t n = PyNumber_AsSsize_t(args[2], NULL);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t seplen;
    const char *sep = utf8_of(args[3], &seplen);
    if (sep == NULL) {
        return NULL;
    }
    uint32_t crc;
    if (crc_sides((SideObject *)args[0], (SideObject *)args[1], n, sep, seplen, &crc) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong((unsigned long)crc);
}

static PyObject *
crc32_pairs(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "crc32_pairs() takes 6 arguments");
        return NULL;
    }
    for (int k = 0; k < 4; k++) {
        if (!PyList_CheckExact(args[k])) {
            PyErr_SetString(PyExc_TypeError, "crc32_pairs(): columns must be lists");
            return NULL;
        }
    }
    Py_ssize_t n = PyNumber_AsSsize_t(args[4], NULL);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t seplen;
    const char *sep = utf8_of(args[5], &seplen);
    if (sep == NULL) {
        return NULL;
    }
    uint32_t crc;
    if (crc_pairs_compute(args[0], args[1], args[2], args[3], n, sep, seplen, &crc) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong((unsigned long)crc);
}

PyDoc_STRVAR(crc32_doc,
"crc32(data, /) -> int\n\nUnsigned CRC32 of bytes, equal to zlib.crc32(data) (for tests).");

static PyObject *
crc32_bytes(PyObject *Py_UNUSED(self), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    uint32_t crc = crc_update(0xFFFFFFFFu, (const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong((unsigned long)(crc ^ 0xFFFFFFFFu));
}

/* ------------------------------------------------------------------ decimals */

/* Fast Decimal construction. Decimal(text) costs ~1,500 instructions in CPython's _decimal
 * (argument parsing, the context variable, an ASCII copy of the text, the general string
 * parser); for the texts books carry (digits with at most one '.', at most 19 digits) the
 * value is just a coefficient below 10**19 (one libmpdec word) and the exponent -(digits
 * after the '.'), which is what this writes into a new object of the Decimal type, exactly
 * as _decimal's own constructor lays it out (PyDecType_New: the inline word array, static
 * flags, hash not computed). The layout is _decimal's private one (stable since 3.3), so
 * it is checked at import against a Decimal the real constructor built
 * (layout_check); if anything differs, or the type is not _decimal's, every text goes
 * through the Decimal type as before. Same value, same exponent, so same str(). */

typedef struct { /* libmpdec's mpd_t (64-bit configuration) */
    uint8_t flags;
    int64_t exp;
    int64_t digits;
    int64_t len;
    int64_t alloc;
    uint64_t *data;
} dec_mpd;

typedef struct { /* _decimal's PyDecObject */
    PyObject_HEAD
    Py_hash_t hash;
    dec_mpd dec;
    uint64_t data[4];
} dec_object;

#define DEC_STATIC_FLAGS 48 /* MPD_STATIC | MPD_STATIC_DATA, sign bit clear */

static PyTypeObject *fast_type; /* _decimal's Decimal when its layout checked out, else NULL */

/* Coefficient and exponent of a plain text (digits, at most one '.', 1..19 digits, ASCII
 * str). Returns 0 or -1: not plain (the caller asks the Decimal type). */
static int
plain_ascii(const char *s, Py_ssize_t n, uint64_t *coef, int64_t *exp)
{
    uint64_t m = 0;
    Py_ssize_t dot = -1; /* index of the '.', if any */
    if (n < 1 || n > 20) {
        return -1; /* no digit, or more than 19 digits */
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d < 10) {
            m = m * 10 + d; /* at most 19 digits (n <= 20 with a '.'): no overflow */
        }
        else if (s[i] == '.' && dot < 0) {
            dot = i;
        }
        else {
            return -1;
        }
    }
    Py_ssize_t digits = dot < 0 ? n : n - 1;
    if (digits < 1 || digits > 19) {
        return -1;
    }
    int frac = dot < 0 ? 0 : (int)(n - 1 - dot);
    *coef = m;
    *exp = -(int64_t)frac;
    return 0;
}

static int
plain_decimal(PyObject *text, uint64_t *coef, int64_t *exp)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_COMPACT_ASCII(text)) {
        return -1;
    }
    return plain_ascii((const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), coef, exp);
}

/* A new Decimal of coefficient `coef` (< 10**19) and exponent `exp` (fast_type set). */
static PyObject *
new_decimal(uint64_t coef, int64_t exp)
{
    dec_object *d = (dec_object *)_PyObject_New(fast_type);
    if (d == NULL) {
        return NULL;
    }
    /* digits of coef (1 for 0): from its bit length, corrected by one comparison */
    static const uint64_t P10[20] = {
        1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
        100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
        10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
        100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};
    int64_t t = ((64 - __builtin_clzll(coef | 1)) * 1233) >> 12; /* ~ floor(log10) */
    int64_t nd = t + ((coef | 1) >= P10[t]);
    d->hash = -1;
    d->dec.flags = DEC_STATIC_FLAGS;
    d->dec.exp = exp;
    d->dec.digits = nd;
    d->dec.len = 1;
    d->dec.alloc = 4;
    d->dec.data = d->data;
    d->data[0] = coef;
    return (PyObject *)d;
}

/* Whether `d` (built by the real constructor from the text of coefficient `coef`,
 * exponent `exp`, `nd` digits) is laid out as dec_object says. Reads only. */
static int
layout_matches(PyObject *d, uint64_t coef, int64_t exp, int64_t nd)
{
    dec_object *o = (dec_object *)d;
    return o->hash == -1 && o->dec.flags == DEC_STATIC_FLAGS && o->dec.exp == exp &&
           o->dec.digits == nd && o->dec.len == 1 && o->dec.alloc == 4 &&
           o->dec.data == o->data && o->data[0] == coef;
}

/* Set fast_type to decimal.Decimal if it is _decimal's with the expected layout. */
static int
layout_check(void)
{
    fast_type = NULL;
    PyObject *mod = PyImport_ImportModule("decimal");
    if (mod == NULL) {
        return -1;
    }
    PyObject *type = PyObject_GetAttrString(mod, "Decimal");
    Py_DECREF(mod);
    if (type == NULL) {
        return -1;
    }
    PyTypeObject *t = (PyTypeObject *)type;
    if (!PyType_Check(type) || strcmp(t->tp_name, "decimal.Decimal") != 0 ||
        t->tp_basicsize != (Py_ssize_t)sizeof(dec_object) || t->tp_itemsize != 0 ||
        (t->tp_flags & Py_TPFLAGS_HAVE_GC) || t->tp_free != PyObject_Free) {
        Py_DECREF(type); /* _pydecimal or another layout: no fast path */
        return 0;
    }
    static const struct {
        const char *text;
        uint64_t coef;
        int64_t exp, nd;
    } probes[] = {
        {"1234567890123.45", 123456789012345u, -2, 15},
        {"0.00", 0, -2, 1},
        {"9999999999999999999", 9999999999999999999u, 0, 19},
        {"30238.8", 302388, -1, 6},
    };
    int ok = 1;
    for (size_t i = 0; ok && i < sizeof(probes) / sizeof(probes[0]); i++) {
        PyObject *d = PyObject_CallFunction(type, "s", probes[i].text);
        if (d == NULL) {
            Py_DECREF(type);
            return -1;
        }
        ok = Py_IS_TYPE(d, t) && layout_matches(d, probes[i].coef, probes[i].exp, probes[i].nd);
        if (ok) { /* and ours compares and prints the same */
            fast_type = t;
            PyObject *mine = new_decimal(probes[i].coef, probes[i].exp);
            fast_type = NULL;
            if (mine == NULL) {
                Py_DECREF(d);
                Py_DECREF(type);
                return -1;
            }
            PyObject *a = PyObject_Str(d), *b = PyObject_Str(mine);
            int eq = PyObject_RichCompareBool(d, mine, Py_EQ);
            ok = a != NULL && b != NULL && eq == 1 && PyUnicode_Compare(a, b) == 0 &&
                 PyUnicode_CompareWithASCIIString(a, probes[i].text) == 0;
            Py_XDECREF(a);
            Py_XDECREF(b);
            Py_DECREF(mine);
            PyErr_Clear();
        }
        Py_DECREF(d);
    }
    if (ok) {
        fast_type = t; /* the type object stays alive: the decimal module holds it */
    }
    Py_DECREF(type);
    return 0;
}

/* decimal(text) (a new reference): built here for a plain text when `decimal` is the
 * checked Decimal type, else by calling `decimal`. */
static PyObject *
make_decimal(PyObject *decimal_type, PyObject *text)
{
    uint64_t coef;
    int64_t exp;
    if ((PyTypeObject *)decimal_type == fast_type && fast_type != NULL &&
        plain_decimal(text, &coef, &exp) == 0) {
        return new_decimal(coef, exp);
    }
    return PyObject_CallOneArg(decimal_type, text);
}

/* For other extensions (marketfeed-okx's _cokx), through the capsule
 * marketfeed._cbook._C_API: Decimal(text) of the ASCII bytes s[:n] when they are a plain
 * text (see plain_ascii) and the fast path is on; NULL without an error set when not
 * (the caller builds it its own way), NULL with an error set on failure. */
static PyObject *
decimal_from_ascii(const char *s, Py_ssize_t n)
{
    uint64_t coef;
    int64_t exp;
    if (fast_type == NULL || plain_ascii(s, n, &coef, &exp) < 0) {
        return NULL;
    }
    return new_decimal(coef, exp);
}

/* Layout shared with _cokx.c and _cupbit.c (keep in step; fields are only ever appended):
 * version 1: decimal_type, decimal_from_ascii; version 2: engine_delta; version 3:
 * engine_delta_raw; version 4: raw_levels. */
typedef struct {
    int version;
    PyTypeObject *decimal_type; /* the Decimal type decimal_from_ascii builds (or NULL) */
    PyObject *(*decimal_from_ascii)(const char *s, Py_ssize_t n);
    /* engine_delta(args) with its 10 arguments (see engine_delta_doc) */
    PyObject *(*engine_delta)(PyObject *const *args);
    /* engine_delta with the levels as raw text (raw_level: px, pxn, sz, szn, pointing into
     * a frame kept alive for the call; args[3] and args[4] are not read): the same events,
     * no str made for any level; None (nothing changed) for
     * anything engine_delta would hand back and for a text that is not plain digits with
     * at most one '.', after which the caller decodes the levels and calls engine_delta */
    PyObject *(*engine_delta_raw)(PyObject *const *args, const raw_level *bids, Py_ssize_t nb,
                                  const raw_level *asks, Py_ssize_t na);
    /* version 4: a RawLevels of v[:n] (copied) keeping `owner` (the frame holding the
     * texts) alive: pass it as a snapshot's levels; Side.load reads the text itself */
    PyObject *(*raw_levels)(PyObject *owner, const raw_level *v, Py_ssize_t n);
} cbook_api;

static cbook_api c_api;

/* Cached exact Decimal of a text: a dict hit, else a miss. New reference.
 * capacity < 0 (decimal_levels): the miss is decimal(text), stored (the caller bounds the
 * cache once per call). capacity >= 0 (decimal_columns): the miss is what the cache's
 * __missing__ (_DecimalCache) does: for a plain text, the Decimal built here (always
 * finite), the cache cleared if it holds `capacity` entries, then stored; any other text
 * goes through cache[text] itself (its __missing__: same checks, same errors). With
 * decimal NULL every miss is cache[text]. */
static PyObject *
cached_decimal(PyObject *cache, PyObject *text, PyObject *decimal_type, Py_ssize_t capacity)
{
    PyObject *v = PyDict_GetItemWithError(cache, text);
    if (v != NULL) {
        Py_INCREF(v);
        return v;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (capacity >= 0) {
        uint64_t coef;
        int64_t exp;
        if (decimal_type == NULL || (PyTypeObject *)decimal_type != fast_type ||
            fast_type == NULL || plain_decimal(text, &coef, &exp) < 0) {
            return PyObject_GetItem(cache, text);
        }
        v = new_decimal(coef, exp);
        if (v == NULL) {
            return NULL;
        }
        if (PyDict_GET_SIZE(cache) >= capacity) {
            PyDict_Clear(cache);
        }
    }
    else {
        v = make_decimal(decimal_type, text);
        if (v == NULL) {
            return NULL;
        }
    }
    if (PyDict_SetItem(cache, text, v) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

/* Exact Decimal of a level's text for decimal_levels/decimal_columns: a plain text is built
 * here directly when `decimal_type` is the checked _decimal type (cheaper than a cache
 * lookup: no hash, no probe, and no miss to store); any other text goes through the cache
 * (cached_decimal). New reference. */
static inline PyObject *
level_decimal(PyObject *cache, PyObject *text, PyObject *decimal_type, Py_ssize_t capacity)
{
    uint64_t coef;
    int64_t exp;
    if ((PyTypeObject *)decimal_type == fast_type && fast_type != NULL &&
        plain_decimal(text, &coef, &exp) == 0) {
        return new_decimal(coef, exp);
    }
    return cached_decimal(cache, text, decimal_type, capacity);
}

/* Take a new tuple out of the collector when no item can lead back to it (no item the
 * collector tracks or may track later): CPython's own _PyTuple_MaybeUntrack, done when
 * the tuple is made rather than on the collector's first pass. Events' levels are
 * tuples of Decimals, a busy book makes dozens a message, and the collections they set
 * off then walk none of them. */
static void
untrack_tuple(PyObject *t)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *o = PyTuple_GET_ITEM(t, i);
        if (PyObject_IS_GC(o) && (!PyTuple_CheckExact(o) || PyObject_GC_IsTracked(o))) {
            return;
        }
    }
    PyObject_GC_UnTrack(t);
}

/* An event's level: the tuple (p, z), taken out of the collector when it may be (see
 * untrack_tuple). Steals both references; NULL if either is NULL (an error set) or on
 * MemoryError. */
static PyObject *
pair_of(PyObject *p, PyObject *z)
{
    PyObject *pair = p == NULL || z == NULL ? NULL : PyTuple_New(2);
    if (pair == NULL) {
        Py_XDECREF(p);
        Py_XDECREF(z);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, p);
    PyTuple_SET_ITEM(pair, 1, z);
    untrack_tuple(pair);
    return pair;
}

static PyObject *
decimal_pair(PyObject *cache, PyObject *px, PyObject *sz, PyObject *decimal_type,
             Py_ssize_t capacity)
{
    PyObject *p = level_decimal(cache, px, decimal_type, capacity);
    return pair_of(p, p == NULL ? NULL : level_decimal(cache, sz, decimal_type, capacity));
}


PyDoc_STRVAR(decimal_levels_doc,
"decimal_levels(levels, cache, decimal, capacity, /) -> tuple[tuple[Decimal, Decimal], ...]\n\n"
"``_levels`` in C: ``(Decimal(lv[0]), Decimal(lv[1]))`` per level through ``cache`` (a dict;\n"
"a miss is ``decimal(text)``, stored), then ``cache.clear()`` if it holds more than\n"
"``capacity`` entries.");

static PyObject *
decimal_levels(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decimal_levels() takes 4 arguments");
        return NULL;
    }
    PyObject *levels = args[0], *cache = args[1], *decimal_type = args[2];
    if (!PyDict_Check(cache)) {
        PyErr_SetString(PyExc_TypeError, "decimal_levels(): cache must be a dict");
        return NULL;
    }
    Py_ssize_t capacity = PyNumber_AsSsize_t(args[3], NULL);
    if (capacity == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyTuple_New(count);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *lv = PySequence_Fast_GET_ITEM(seq, n);
        PyObject *px, *sz;
        if ((PyList_CheckExact(lv) || PyTuple_CheckExact(lv)) && PySequence_Fast_GET_SIZE(lv) >= 2) {
            px = PySequence_Fast_GET_ITEM(lv, 0);
            sz = PySequence_Fast_GET_ITEM(lv, 1);
            Py_INCREF(px);
            Py_INCREF(sz);
        }
        else {
            px = PyObject_GetItem(lv, ZERO);
            if (px == NULL) {
                goto error;
            }
            sz = PyObject_GetItem(lv, ONE);
            if (sz == NULL) {
                Py_DECREF(px);
                goto error;
            }
        }
        PyObject *pair = decimal_pair(cache, px, sz, decimal_type, -1);
        Py_DECREF(px);
        Py_DECREF(sz);
        if (pair == NULL) {
            goto error;
        }
        PyTuple_SET_ITEM(out, n, pair);
    }
    Py_DECREF(seq);
    untrack_tuple(out);
    if (PyDict_GET_SIZE(cache) > capacity) {
        PyDict_Clear(cache);
    }
    return out;

error:
    Py_DECREF(seq);
    Py_DECREF(out);
    return NULL;
}

PyDoc_STRVAR(decimal_columns_doc,
"decimal_columns(pxs, szs, n, cache, decimal=None, capacity=0, /) -> tuple[tuple[Decimal, Decimal], ...]\n\n"
"``tuple(zip(map(cache.__getitem__, pxs[:n]), map(cache.__getitem__, szs[:n])))`` in C\n"
"(``n`` None: every level). A miss goes through ``cache[text]`` (its ``__missing__``); with\n"
"``decimal`` (``decimal.Decimal``) and ``capacity`` given, a plain text's miss is done here\n"
"exactly as ``_DecimalCache.__missing__`` does it (clear at ``capacity``, then store).");

static PyObject *
decimal_columns(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "decimal_columns() takes 4 or 6 arguments");
        return NULL;
    }
    PyObject *pxs = args[0], *szs = args[1], *cache = args[3];
    PyObject *decimal_type = NULL;
    Py_ssize_t capacity = 0;
    if (nargs == 6 && args[4] != Py_None) {
        decimal_type = args[4];
        capacity = PyNumber_AsSsize_t(args[5], NULL);
        if (capacity == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (capacity < 0) {
            capacity = 0;
        }
    }
    if (!PyList_CheckExact(pxs) || !PyList_CheckExact(szs) || !PyDict_Check(cache)) {
        PyErr_SetString(PyExc_TypeError, "decimal_columns(): pxs/szs must be lists, cache a dict");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(pxs);
    if (PyList_GET_SIZE(szs) < count) {
        count = PyList_GET_SIZE(szs);
    }
    if ((count = slice_count(args[2], count)) < 0) {
        return NULL;
    }
    PyObject *out = PyTuple_New(count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (i >= PyList_GET_SIZE(pxs) || i >= PyList_GET_SIZE(szs)) { /* __missing__ ran code */
            PyErr_SetString(PyExc_RuntimeError, "book side changed while converting");
            Py_DECREF(out);
            return NULL;
        }
        PyObject *px = PyList_GET_ITEM(pxs, i);
        PyObject *sz = PyList_GET_ITEM(szs, i);
        Py_INCREF(px);
        Py_INCREF(sz);
        PyObject *pair = decimal_pair(cache, px, sz, decimal_type, capacity);
        Py_DECREF(px);
        Py_DECREF(sz);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, pair);
    }
    untrack_tuple(out);
    return out;
}

/* A level text's exact Decimal, as level_decimal gives it for the text as a str: a plain
 * ASCII text built here directly (no str made), anything else through the cache. */
static PyObject *
lv_decimal(const lvtext *t, uint8_t n, PyObject *cache, PyObject *decimal_type,
           Py_ssize_t capacity)
{
    Py_ssize_t len;
    const char *text = lv_text(t, n, &len);
    uint64_t coef;
    int64_t exp;
    if (text != NULL && fast_type != NULL && (PyTypeObject *)decimal_type == fast_type &&
        plain_ascii(text, len, &coef, &exp) == 0) {
        return new_decimal(coef, exp);
    }
    PyObject *u = lv_str(t, n);
    if (u == NULL) {
        return NULL;
    }
    PyObject *v = level_decimal(cache, u, decimal_type, capacity);
    Py_DECREF(u);
    return v;
}

static PyObject *
Side_decimals(SideObject *s, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decimals() takes 4 arguments");
        return NULL;
    }
    PyObject *cache = args[1], *decimal_type = args[2];
    if (!PyDict_Check(cache)) {
        PyErr_SetString(PyExc_TypeError, "decimals(): cache must be a dict");
        return NULL;
    }
    if (s->py != NULL) { /* exact mode: the texts from Python, then as decimal_columns */
        PyObject *cols = PyObject_VectorcallMethod(S_COLUMNS, (PyObject *[]){s->py, args[0]}, 2,
                                                   NULL);
        if (cols == NULL) {
            return NULL;
        }
        if (!PyTuple_Check(cols) || PyTuple_GET_SIZE(cols) != 2) {
            Py_DECREF(cols);
            PyErr_SetString(PyExc_TypeError, "decimals(): _Side.columns() gave no pair");
            return NULL;
        }
        PyObject *call[6] = {PyTuple_GET_ITEM(cols, 0), PyTuple_GET_ITEM(cols, 1), Py_None,
                             cache, decimal_type, args[3]};
        PyObject *out = decimal_columns(NULL, call, 6);
        Py_DECREF(cols);
        return out;
    }
    Py_ssize_t capacity = PyNumber_AsSsize_t(args[3], NULL);
    if (capacity == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (capacity < 0) {
        capacity = 0;
    }
    Py_ssize_t n = slice_count(args[0], s->len);
    if (n < 0) {
        return NULL;
    }
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i >= s->len || s->py != NULL) { /* a cache's __missing__ ran code */
            PyErr_SetString(PyExc_RuntimeError, "book side changed while converting");
            Py_DECREF(out);
            return NULL;
        }
        Level *l = LV(s) + i;
        PyObject *p = lv_decimal(&l->px, l->pxn, cache, decimal_type, capacity);
        l = LV(s) + i; /* (the cache may have run code) */
        PyObject *z = NULL;
        if (p != NULL && (i >= s->len || s->py != NULL)) {
            PyErr_SetString(PyExc_RuntimeError, "book side changed while converting");
        }
        else if (p != NULL) {
            z = lv_decimal(&l->sz, l->szn, cache, decimal_type, capacity);
        }
        PyObject *pair = pair_of(p, z);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, pair);
    }
    untrack_tuple(out);
    return out;
}

/* ------------------------------------------------------------------ engine_delta */

/* BookEngine.delta in C for the common case: a known instrument whose book is valid, when
 * no top snapshot is due (emit "delta", or "top"/"both" between two snapshots). It reads the engine's and its _Slot's __slots__ at the
 * offsets register_engine() found (as apply_delta does the book's), applies the levels with
 * apply_delta (finishing through L2Book._finish_delta where that hands back), builds the
 * event by calling the BookDelta type with the same keywords as Python, and reports a bad
 * level through BookEngine._fail exactly as Python's ``except _BAD_DATA``. */

enum { E_SLOTS, E_VENUE, E_COUNT };
static const char *const ENGINE_SLOTS[E_COUNT] = {"_slots", "venue"};
enum { T_BOOK, T_EMIT_DELTA, T_EMIT_TOP, T_FAILED, T_NEXT_TOP, T_TOP_DEPTH, T_TOP_INTERVAL,
       T_COUNT };
static const char *const ESLOT_SLOTS[T_COUNT] = {"book",     "emit_delta", "emit_top",
                                                 "failed",   "next_top",   "top_depth",
                                                 "top_interval"};
static PyTypeObject *engine_type, *eslot_type;
static Py_ssize_t engine_off[E_COUNT], eslot_off[T_COUNT];
static PyObject *delta_type, *delta_kw, *dec_cache, *dec_type, *dec_capacity, *bad_data;
static PyObject *S_FAIL, *S_FINISH, *S_C, *S_TO_SNAPSHOT, *EMPTY_TUPLE;
static PyObject *book_globals; /* marketfeed._book's globals(): off while its _c is None */

static const char *const DELTA_KW[] = {"venue", "symbol", "native_symbol", "event_time",
                                       "receive_time", "bids", "asks", "sequence",
                                       "prev_sequence", "checksum", "verified"};
#define DELTA_NKW 11

PyDoc_STRVAR(register_engine_doc,
"register_engine(engine_type, slot_type, checksum_type, delta_type, cache, decimal,\n"
"                capacity, bad_data, book_globals, /) -> bool\n\n"
"Enable engine_delta for exactly BookEngine and _Slot, the Crc32Checksum fast path of\n"
"apply_delta, and give the BookDelta type, the decimal cache with its Decimal type and\n"
"capacity, the exception types a bad update raises (_BAD_DATA) and marketfeed._book's\n"
"globals() (engine_delta hands back while their _c is None): whether every slot was found.");

static PyObject *
register_engine(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9 || !PyType_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_Check(args[2]) || !PyType_Check(args[3]) || !PyDict_Check(args[4]) ||
        !PyLong_CheckExact(args[6]) || !PyTuple_CheckExact(args[7]) ||
        !PyDict_CheckExact(args[8])) {
        PyErr_SetString(PyExc_TypeError, "register_engine() takes 3 types, the BookDelta type, "
                                         "a dict, the Decimal type, an int, a tuple and a dict");
        return NULL;
    }
    Py_CLEAR(engine_type);
    Py_CLEAR(eslot_type);
    Py_CLEAR(crc_type);
    if (S_FAIL == NULL) {
        S_FAIL = PyUnicode_InternFromString("_fail");
        S_FINISH = PyUnicode_InternFromString("_finish_delta");
        S_C = PyUnicode_InternFromString("_c");
        S_TO_SNAPSHOT = PyUnicode_InternFromString("to_snapshot");
        EMPTY_TUPLE = PyTuple_New(0);
        delta_kw = PyTuple_New(DELTA_NKW);
        if (S_FAIL == NULL || S_FINISH == NULL || S_C == NULL || S_TO_SNAPSHOT == NULL ||
            EMPTY_TUPLE == NULL || delta_kw == NULL) {
            return NULL;
        }
        for (int i = 0; i < DELTA_NKW; i++) {
            PyObject *k = PyUnicode_InternFromString(DELTA_KW[i]);
            if (k == NULL) {
                return NULL;
            }
            PyTuple_SET_ITEM(delta_kw, i, k);
        }
    }
    PyTypeObject *et = (PyTypeObject *)args[0], *st = (PyTypeObject *)args[1];
    PyTypeObject *ct = (PyTypeObject *)args[2];
    if (slot_offsets(et, ENGINE_SLOTS, E_COUNT, engine_off) < 0 ||
        slot_offsets(st, ESLOT_SLOTS, T_COUNT, eslot_off) < 0 ||
        slot_offsets(ct, CRC_SLOTS, K_COUNT, crc_off) < 0) {
        Py_RETURN_FALSE; /* engine_delta then always hands back */
    }
    Py_INCREF(args[3]);
    Py_XSETREF(delta_type, args[3]);
    Py_INCREF(args[4]);
    Py_XSETREF(dec_cache, args[4]);
    Py_INCREF(args[5]);
    Py_XSETREF(dec_type, args[5]);
    Py_INCREF(args[6]);
    Py_XSETREF(dec_capacity, args[6]);
    Py_INCREF(args[7]);
    Py_XSETREF(bad_data, args[7]);
    Py_INCREF(args[8]);
    Py_XSETREF(book_globals, args[8]);
    Py_INCREF(et);
    Py_INCREF(st);
    Py_INCREF(ct);
    engine_type = et;
    eslot_type = st;
    crc_type = ct;
    Py_RETURN_TRUE;
}

/* Python's ``except _BAD_DATA as exc: return self._fail(slot, exc, receive_time)`` with the
 * exception set: the resync events, or NULL (the exception left set) for any other. */
static PyObject *
engine_fail(PyObject *engine, PyObject *slot, PyObject *receive_time)
{
    if (!PyErr_ExceptionMatches(bad_data)) {
        return NULL;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    PyObject *call[4] = {engine, slot, value, receive_time};
    PyObject *out = PyObject_VectorcallMethod(S_FAIL, call, 4,
                                              NULL);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return out;
}

/* BookDelta levels of raw texts: a tuple of (Decimal, Decimal), each built here, and
 * (pre not NULL) in pre[:count] the prices and zero sizes for side_apply. NULL with no
 * exception set when a text is not plain (or Decimals are not built here), NULL with one
 * on an error. */
static PyObject *
raw_decimal_levels(const raw_level *lv, Py_ssize_t count, raw_parsed *pre)
{
    if (fast_type == NULL || dec_type != (PyObject *)fast_type) {
        return NULL;
    }
    PyObject *out = PyTuple_New(count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        uint64_t pc, zc;
        int64_t pe, ze;
        PyObject *pair = NULL;
        if (plain_ascii(lv[n].px, lv[n].pxn, &pc, &pe) == 0 &&
            plain_ascii(lv[n].sz, lv[n].szn, &zc, &ze) == 0) {
            PyObject *p = new_decimal(pc, pe);
            pair = pair_of(p, p == NULL ? NULL : new_decimal(zc, ze));
            if (pre != NULL) {
                /* parse_price_ascii's exact fast path (Clinger), else NaN: it parses */
                pre[n].f = pc < ((uint64_t)1 << 53) && -pe <= 22 ? (double)pc / POW10[-pe] : NAN;
                pre[n].zero = zc == 0;
            }
        }
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL; /* not plain (no exception), or an allocation error */
        }
        PyTuple_SET_ITEM(out, n, pair);
    }
    PyObject_GC_UnTrack(out); /* untracked pairs only */
    return out;
}

/* BookDelta levels of one side's str levels (n of them): their Decimals through the
 * engine's cache (decimal_levels), or the empty tuple. New reference, or NULL. */
static PyObject *
str_decimal_levels(PyObject *levels, Py_ssize_t n)
{
    if (n == 0) {
        return Py_NewRef(EMPTY_TUPLE);
    }
    PyObject *dargs[4] = {levels, dec_cache, dec_type, dec_capacity};
    return decimal_levels(NULL, dargs, 4);
}

/* The work of engine_delta: a[0..9] = engine, native_symbol, symbol, bids, asks,
 * event_time, receive_time, sequence, prev_sequence, checksum. A new list of events; None
 * (a new reference) when Python must do it all (nothing was changed); NULL on error.
 * With raw, the levels are raw_b[:nb] and raw_a[:na] (a[3] and a[4] are ignored): the
 * capsule's engine_delta_raw, which returns None for any text that is not plain too. */
static PyObject *
engine_delta_core(PyObject *const *a, const raw_level *raw_b, Py_ssize_t nb,
                  const raw_level *raw_a, Py_ssize_t na, int raw)
{
    PyObject *engine = a[0], *native = a[1], *bids = a[3], *asks = a[4];
    PyObject *event_time = a[5], *receive_time = a[6], *sequence = a[7];
    PyObject *prev_sequence = a[8], *checksum = a[9];
    if (engine_type == NULL || book_type == NULL || !Py_IS_TYPE(engine, engine_type)) {
        Py_RETURN_NONE;
    }
    PyObject *on = PyDict_GetItemWithError(book_globals, S_C); /* borrowed */
    if (on == NULL || on == Py_None) {
        PyErr_Clear();
        Py_RETURN_NONE; /* the pure-Python engine is switched on */
    }
    PyObject *slots = SLOT(engine, engine_off[E_SLOTS]);
    PyObject *venue = SLOT(engine, engine_off[E_VENUE]);
    if (slots == NULL || venue == NULL || !PyDict_CheckExact(slots) ||
        !PyUnicode_CheckExact(native)) {
        Py_RETURN_NONE;
    }
    PyObject *slot = PyDict_GetItemWithError(slots, native); /* borrowed */
    if (slot == NULL || !Py_IS_TYPE(slot, eslot_type)) {
        PyErr_Clear();
        Py_RETURN_NONE; /* a new instrument (or an odd slot): Python's */
    }
    for (int i = 0; i < T_COUNT; i++) {
        if (SLOT(slot, eslot_off[i]) == NULL) {
            Py_RETURN_NONE;
        }
    }
    PyObject *book = SLOT(slot, eslot_off[T_BOOK]);
    PyObject *emit_top = SLOT(slot, eslot_off[T_EMIT_TOP]);
    PyObject *emit_delta = SLOT(slot, eslot_off[T_EMIT_DELTA]);
    if (SLOT(slot, eslot_off[T_FAILED]) != Py_False || !PyBool_Check(emit_top) ||
        !PyBool_Check(emit_delta) || !Py_IS_TYPE(book, book_type)) {
        Py_RETURN_NONE; /* dropping (or odd slots): Python's */
    }
    int due = 0;
    if (emit_top == Py_True) {
        /* whether a top snapshot is due after this update (the comparison first, so a
         * failing one hands back before anything changed) */
        due = PyObject_RichCompareBool(receive_time, SLOT(slot, eslot_off[T_NEXT_TOP]), Py_GE);
        if (due < 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    }
    PyObject *result = NULL, *bl = NULL, *al = NULL, *r = NULL;
    raw_parsed pre[RAW_PARSED_MAX], *pre_b = NULL, *pre_a = NULL;
    if (raw && emit_delta == Py_True && (nb || na)) {
        if (nb + na <= RAW_PARSED_MAX) {
            pre_b = pre;
            pre_a = pre + nb;
        }
        /* the event's Decimals first: a text that is not plain hands back unchanged */
        if ((bl = raw_decimal_levels(raw_b, nb, pre_b)) == NULL ||
            (al = raw_decimal_levels(raw_a, na, pre_a)) == NULL) {
            Py_XDECREF(bl);
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE;
        }
    }
    Py_INCREF(slot);
    Py_INCREF(book);
    PyObject *args8[8] = {book, bids, asks, sequence, prev_sequence, checksum, receive_time,
                          event_time};
    r = apply_delta_impl(args8, raw_b, pre_b, nb, raw_a, pre_a, na, raw);
    if (r == NULL) {
        goto failed;
    }
    if (r == Py_None) {
        result = r; /* nothing changed: Python's delta does it all */
        r = NULL;
        goto done;
    }
    if (!PyBool_Check(r)) { /* (stage, n, dirty, seq_checked): Python finishes */
        if (raw) { /* Python reads levels as (price, size) strings */
            bids = raw_to_list(raw_b, nb);
            asks = bids == NULL ? NULL : raw_to_list(raw_a, na);
            if (asks == NULL) {
                Py_XDECREF(bids);
                goto failed;
            }
        }
        PyObject *call[10] = {book, bids, asks, PyTuple_GET_ITEM(r, 0), PyTuple_GET_ITEM(r, 1),
                              PyTuple_GET_ITEM(r, 2), PyTuple_GET_ITEM(r, 3), checksum,
                              receive_time, event_time};
        PyObject *v = PyObject_VectorcallMethod(S_FINISH, call,
                                                10, NULL);
        if (raw) {
            Py_DECREF(bids);
            Py_DECREF(asks);
        }
        Py_SETREF(r, v);
        if (r == NULL) {
            goto failed;
        }
    }
    if (!raw) { /* apply_delta returned a result, so bids and asks are lists or tuples */
        nb = PySequence_Fast_GET_SIZE(bids);
        na = PySequence_Fast_GET_SIZE(asks);
    }
    result = PyList_New(0);
    if (result == NULL) {
        goto done;
    }
    if ((nb || na) && emit_delta == Py_True) { /* (a keep-alive makes no BookDelta) */
        /* raw levels' Decimals were built above */
        if (!raw && ((bl = str_decimal_levels(bids, nb)) == NULL ||
                     (al = str_decimal_levels(asks, na)) == NULL)) {
            goto failed;
        }
        PyObject *vals[DELTA_NKW] = {venue, SLOT(book, book_off[B_SYMBOL]), native, event_time,
                                     receive_time, bl, al, sequence, prev_sequence, checksum, r};
        PyObject *ev = PyObject_Vectorcall(delta_type, vals, 0, delta_kw);
        if (ev == NULL) {
            goto failed;
        }
        int rc = PyList_Append(result, ev);
        Py_DECREF(ev);
        if (rc < 0) {
            goto failed;
        }
    }
    if (due) { /* slot.next_top = receive_time + slot.top_interval; book.to_snapshot(...) */
        PyObject *next = PyNumber_Add(receive_time, SLOT(slot, eslot_off[T_TOP_INTERVAL]));
        if (next == NULL) {
            goto failed;
        }
        Py_XSETREF(SLOT(slot, eslot_off[T_NEXT_TOP]), next);
        PyObject *call[4] = {book, SLOT(slot, eslot_off[T_TOP_DEPTH]), event_time, receive_time};
        PyObject *snap = PyObject_VectorcallMethod(S_TO_SNAPSHOT, call, 4, NULL);
        if (snap == NULL) {
            goto failed;
        }
        int rc = PyList_Append(result, snap);
        Py_DECREF(snap);
        if (rc < 0) {
            goto failed;
        }
    }
    goto done;
failed:
    Py_CLEAR(result); /* what was built is not returned: the resync events are */
    result = engine_fail(engine, slot, receive_time);
done:
    Py_XDECREF(r);
    Py_XDECREF(bl);
    Py_XDECREF(al);
    Py_DECREF(book);
    Py_DECREF(slot);
    return result;
}

static PyObject *
engine_delta_impl(PyObject *const *a)
{
    return engine_delta_core(a, NULL, 0, NULL, 0, 0);
}

static PyObject *
engine_delta_raw(PyObject *const *a, const raw_level *bids, Py_ssize_t nb,
                 const raw_level *asks, Py_ssize_t na)
{
    return engine_delta_core(a, bids, nb, asks, na, 1);
}

/* Raw levels pointing into the bytes of a list of (bytes, bytes) (for tests). */
static raw_level *
bytes_levels(PyObject *list, Py_ssize_t *count)
{
    if (!PyList_CheckExact(list)) {
        PyErr_SetString(PyExc_TypeError, "levels must be a list of (bytes, bytes)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    raw_level *out = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(raw_level));
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyList_GET_ITEM(list, i);
        if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 2 ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(t, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(t, 1))) {
            PyMem_Free(out);
            PyErr_SetString(PyExc_TypeError, "levels must be a list of (bytes, bytes)");
            return NULL;
        }
        out[i].px = PyBytes_AS_STRING(PyTuple_GET_ITEM(t, 0));
        out[i].pxn = PyBytes_GET_SIZE(PyTuple_GET_ITEM(t, 0));
        out[i].sz = PyBytes_AS_STRING(PyTuple_GET_ITEM(t, 1));
        out[i].szn = PyBytes_GET_SIZE(PyTuple_GET_ITEM(t, 1));
    }
    *count = n;
    return out;
}

PyDoc_STRVAR(raw_levels_bytes_doc,
"raw_levels_bytes(frame, levels, /) -> RawLevels\n\n"
"The capsule's ``raw_levels``: a ``RawLevels`` over ``levels`` (a list of ``(price, size)``\n"
"bytes, which it keeps alive; ``frame`` is not used), for tests.");

static PyObject *
raw_levels_bytes(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "raw_levels_bytes() takes 2 arguments");
        return NULL;
    }
    Py_ssize_t n;
    raw_level *v = bytes_levels(args[1], &n);
    if (v == NULL) {
        return NULL;
    }
    PyObject *owner = PySequence_Tuple(args[1]); /* its (bytes, bytes) tuples hold the texts */
    PyObject *r = owner == NULL ? NULL : raw_levels_new(owner, v, n);
    Py_XDECREF(owner);
    PyMem_Free(v);
    return r;
}

PyDoc_STRVAR(engine_delta_bytes_doc,
"engine_delta_bytes(engine, native_symbol, symbol, bids, asks, event_time, receive_time,\n"
"                   sequence, prev_sequence, checksum, /) -> list[Event] | None\n\n"
"The capsule's ``engine_delta_raw`` (what venue plugins' C parsers call with levels as\n"
"raw text in a frame) for levels given as lists of ``(price, size)`` bytes: the same\n"
"events as ``engine_delta`` with those texts decoded; ``None`` when nothing was changed\n"
"and the caller must decode the levels and go on (for tests).");

static PyObject *
engine_delta_bytes(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "engine_delta_bytes() takes 10 arguments");
        return NULL;
    }
    Py_ssize_t nb, na;
    raw_level *b = bytes_levels(args[3], &nb);
    if (b == NULL) {
        return NULL;
    }
    raw_level *a = bytes_levels(args[4], &na);
    if (a == NULL) {
        PyMem_Free(b);
        return NULL;
    }
    PyObject *call[10];
    for (int i = 0; i < 10; i++) {
        call[i] = args[i];
    }
    call[3] = call[4] = Py_None; /* not read */
    PyObject *r = engine_delta_raw(call, b, nb, a, na);
    PyMem_Free(b);
    PyMem_Free(a);
    return r;
}

PyDoc_STRVAR(engine_delta_doc,
"engine_delta(engine, native_symbol, symbol, bids, asks, event_time, receive_time,\n"
"             sequence, prev_sequence, checksum, /) -> list[Event] | None\n\n"
"``BookEngine.delta`` in C for a known instrument with a valid book when no top snapshot\n"
"is due: the same events (or resync pair) as Python's; ``None`` when it changed nothing and\n"
"Python must do it all.");

static PyObject *
engine_delta(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "engine_delta() takes 10 arguments");
        return NULL;
    }
    return engine_delta_impl(args);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"apply_delta", (PyCFunction)(void (*)(void))apply_delta, METH_FASTCALL, apply_delta_doc},
    {"register", (PyCFunction)(void (*)(void))register_types, METH_FASTCALL, register_doc},
    {"crc32_pairs", (PyCFunction)(void (*)(void))crc32_pairs, METH_FASTCALL, crc32_pairs_doc},
    {"crc32", (PyCFunction)crc32_bytes, METH_O, crc32_doc},
    {"crc32_sides", (PyCFunction)(void (*)(void))crc32_sides, METH_FASTCALL, crc32_sides_doc},
    {"decimal_levels", (PyCFunction)(void (*)(void))decimal_levels, METH_FASTCALL,
     decimal_levels_doc},
    {"decimal_columns", (PyCFunction)(void (*)(void))decimal_columns, METH_FASTCALL,
     decimal_columns_doc},
    {"register_engine", (PyCFunction)(void (*)(void))register_engine, METH_FASTCALL,
     register_engine_doc},
    {"engine_delta", (PyCFunction)(void (*)(void))engine_delta, METH_FASTCALL,
     engine_delta_doc},
    {"engine_delta_bytes", (PyCFunction)(void (*)(void))engine_delta_bytes, METH_FASTCALL,
     engine_delta_bytes_doc},
    {"raw_levels_bytes", (PyCFunction)(void (*)(void))raw_levels_bytes, METH_FASTCALL,
     raw_levels_bytes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "marketfeed._cbook",
    "Optional C speedups of marketfeed's L2 book engine (see marketfeed._book).",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__cbook(void)
{
    crc_init();
    crc_fast_init();
    if (layout_check() < 0) {
        return NULL;
    }
    if (ZERO == NULL) {
        ZERO = PyLong_FromLong(0);
        ONE = PyLong_FromLong(1);
        S_NONE = PyUnicode_InternFromString("none");
        S_LINKED = PyUnicode_InternFromString("linked");
        S_CONTIGUOUS = PyUnicode_InternFromString("contiguous");
        S_EXACT_ATTR = PyUnicode_InternFromString("exact");
        S_KEYS_ATTR = PyUnicode_InternFromString("keys");
        S_PXS_ATTR = PyUnicode_InternFromString("pxs");
        S_SZS_ATTR = PyUnicode_InternFromString("szs");
        S_INDEX_ATTR = PyUnicode_InternFromString("index");
        S_LOAD = PyUnicode_InternFromString("load");
        S_COLUMNS = PyUnicode_InternFromString("columns");
        S_HEAD = PyUnicode_InternFromString("head");
        S_PAIRS = PyUnicode_InternFromString("pairs");
        S_FORGET = PyUnicode_InternFromString("forget_pairs");
        if (S_EXACT_ATTR == NULL || S_KEYS_ATTR == NULL || S_PXS_ATTR == NULL ||
            S_SZS_ATTR == NULL || S_INDEX_ATTR == NULL || S_LOAD == NULL || S_COLUMNS == NULL ||
            S_HEAD == NULL || S_PAIRS == NULL || S_FORGET == NULL) {
            return NULL;
        }
        if (ZERO == NULL || ONE == NULL || S_NONE == NULL || S_LINKED == NULL ||
            S_CONTIGUOUS == NULL) {
            return NULL;
        }
    }
    if (PyType_Ready(&SideType) < 0 || PyType_Ready(&RawLevelsType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Side", (PyObject *)&SideType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    c_api.version = 4;
    c_api.decimal_type = fast_type;
    c_api.decimal_from_ascii = decimal_from_ascii;
    c_api.engine_delta = engine_delta_impl;
    c_api.engine_delta_raw = engine_delta_raw;
    c_api.raw_levels = raw_levels_new;
    PyObject *capsule = PyCapsule_New(&c_api, "marketfeed._cbook._C_API", NULL);
    if (capsule == NULL || PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "FAST_DECIMAL", fast_type ? Py_True : Py_False) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

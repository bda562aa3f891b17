/* The BPE merge loop in C: the same merges as tokenizer/bpe_merge.py's loop (and rustbpe's), in
 * a fraction of its time. The Python loop pays tens of microseconds of bookkeeping per merge
 * whatever the merge's size, and a 32k vocabulary is 32k merges; here a small merge costs about
 * the chunks it touches.
 *
 * learn_merges(chunk_counts: dict[str, int], num_merges: int, on_progress, consume, long_chunk)
 *     -> [(left, right)]
 *
 * - Every unique chunk of two or more bytes is kept once, with its count, as token ids in one
 *   array; a merge rewrites the chunks that hold its pair in place (they only get shorter).
 * - Pairs live in one open-addressing table: count, and the chunks that may hold the pair (a
 *   chunk is listed when the pair first appears in it; chunks that lost the pair since are
 *   skipped when it is merged).
 * - A merge of (a, b) into t changes counts only next to what it merged: x a b y loses (x, a) and
 *   (b, y) and gains (x, t) and (t, y), the left neighbour read from the rewritten chunk so that
 *   a b a b gives (t, t). Pairs that gain are new (they hold t) and enter the heap after the merge.
 * - The max-heap is lazy: counts only fall after a pair's first merge pushed it, so an entry
 *   whose count fell since is pushed back with the current count when it surfaces. Ties go to
 *   the smallest (left, right), as rustbpe's.
 * - A chunk longer than ``long_chunk`` bytes (a run of letters with no space, megabytes of it in
 *   the worst case) would cost its whole length in every merge that touches it. Its tokens are
 *   kept as a linked list instead, and each pair lists its positions in such chunks, in order: a
 *   merge costs the occurrences it merges, and a long chunk its length in all.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EMPTY_KEY UINT64_MAX
#define PROGRESS_EVERY 256
#define NONE UINT32_MAX  /* no neighbour, in a long chunk's list */
#define LONG_CHUNK 8192  /* bytes: longer chunks are merged position by position */
#define DEAD UINT32_MAX  /* a long chunk's position merged into the one before it */

typedef struct {
    int64_t count;
    uint32_t *where;  /* chunks that may hold the pair, in order, each once */
    uint32_t *at;  /* positions in long chunks that may hold the pair, in order */
    uint32_t nwhere, capwhere, nat, capat;
    uint32_t touched;  /* the merge (1-based) that last made this pair, to list it once */
} Pair;

/* Pair -> its record: open addressing over keys (a slot is 12 bytes, so the table can stay
 * sparse), the records in one dense array. */
typedef struct {
    uint64_t *keys;  /* left << 32 | right; EMPTY_KEY for a free slot */
    uint32_t *index;  /* the slot's record in ``pairs`` */
    size_t mask;  /* slots - 1, a power of two */
    Pair *pairs;
    size_t used, cap;  /* records */
} PairTable;

typedef struct {
    int64_t count;
    uint64_t key;
} Entry;

typedef struct {
    Entry *items;
    size_t size, cap;
} Heap;

typedef struct {
    uint32_t *tokens;  /* every chunk's ids, one after the other */
    size_t *start;
    uint32_t *length;
    int64_t *weight;  /* how often the chunk occurs in the corpus */
    size_t count;
    /* the long chunks, one after the other: per position its token, neighbours and chunk */
    uint32_t *ltoken, *lnext, *lprev, *lchunk;
    int64_t *lweight;  /* per long chunk */
    size_t lsize, lcount;
    PairTable pairs;
    Heap heap;
    uint64_t *made;  /* pairs a merge created, pushed once it is done */
    size_t nmade, capmade;
} Loop;

static inline size_t hash_key(uint64_t key, size_t mask) {
    /* Fibonacci hashing: the high bits of the product are well mixed */
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static int table_slots(PairTable *t, size_t slots) {
    uint64_t *keys = malloc(slots * sizeof(uint64_t));
    uint32_t *index = malloc(slots * sizeof(uint32_t));
    if (!keys || !index) {
        free(keys);
        free(index);
        return -1;
    }
    for (size_t i = 0; i < slots; i++) keys[i] = EMPTY_KEY;
    if (t->keys) {
        for (size_t i = 0; i <= t->mask; i++) {
            if (t->keys[i] == EMPTY_KEY) continue;
            size_t j = hash_key(t->keys[i], slots - 1);
            while (keys[j] != EMPTY_KEY) j = (j + 1) & (slots - 1);
            keys[j] = t->keys[i];
            index[j] = t->index[i];
        }
        free(t->keys);
        free(t->index);
    }
    t->keys = keys;
    t->index = index;
    t->mask = slots - 1;
    return 0;
}

static int table_init(PairTable *t, size_t expected) {
    size_t slots = 1024;
    while (slots * 7 < expected * 10) slots <<= 1;
    memset(t, 0, sizeof *t);
    return table_slots(t, slots);
}

/* The pair's record, or NULL if it was never counted. */
static inline Pair *table_find(PairTable *t, uint64_t key) {
    size_t i = hash_key(key, t->mask);
    for (;;) {
        if (t->keys[i] == key) return &t->pairs[t->index[i]];
        if (t->keys[i] == EMPTY_KEY) return NULL;
        i = (i + 1) & t->mask;
    }
}

/* The pair's record, made (count 0) if new; NULL when out of memory. A pointer to a record is
 * good only until the next insert. */
static inline Pair *table_insert(PairTable *t, uint64_t key) {
    size_t i = hash_key(key, t->mask);
    for (;;) {
        if (t->keys[i] == key) return &t->pairs[t->index[i]];
        if (t->keys[i] == EMPTY_KEY) break;
        i = (i + 1) & t->mask;
    }
    if ((t->used + 1) * 10 > (t->mask + 1) * 7) {  /* keep the table at most 70% full */
        if (t->used >= UINT32_MAX || table_slots(t, (t->mask + 1) * 2) < 0) return NULL;
        return table_insert(t, key);
    }
    if (t->used == t->cap) {
        size_t cap = t->cap ? t->cap + t->cap / 2 : 1024;
        Pair *pairs = realloc(t->pairs, cap * sizeof(Pair));
        if (!pairs) return NULL;
        t->pairs = pairs;
        t->cap = cap;
    }
    Pair *p = &t->pairs[t->used];
    memset(p, 0, sizeof *p);
    t->keys[i] = key;
    t->index[i] = (uint32_t)t->used++;
    return p;
}

static void table_free(PairTable *t) {
    for (size_t i = 0; i < t->used; i++) {
        free(t->pairs[i].where);
        free(t->pairs[i].at);
    }
    free(t->pairs);
    free(t->keys);
    free(t->index);
    memset(t, 0, sizeof *t);
}

/* Append to a growing list of ids; -1 when out of memory. */
static inline int append(uint32_t **items, uint32_t *n, uint32_t *cap, uint32_t value) {
    if (*n == *cap) {
        uint32_t grown = *cap ? *cap * 2 : 2;
        uint32_t *moved = realloc(*items, (size_t)grown * sizeof(uint32_t));
        if (!moved) return -1;
        *items = moved;
        *cap = grown;
    }
    (*items)[(*n)++] = value;
    return 0;
}

/* List ``chunk`` as holding the pair, unless it is the last one listed (a chunk is processed in
 * one go, so a repeat can only be the last entry). */
static inline int note_chunk(Pair *p, uint32_t chunk) {
    if (p->nwhere && p->where[p->nwhere - 1] == chunk) return 0;
    return append(&p->where, &p->nwhere, &p->capwhere, chunk);
}

/* List a long-chunk position as holding the pair (positions come in order, each once). */
static inline int note_position(Pair *p, uint32_t position) {
    return append(&p->at, &p->nat, &p->capat, position);
}

/* -- the heap: highest count first, then the smallest pair ---------------------------------- */

static inline int before(const Entry *a, const Entry *b) {
    return a->count > b->count || (a->count == b->count && a->key < b->key);
}

static void sift_down(Entry *items, size_t size, size_t i) {
    Entry item = items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && before(&items[child + 1], &items[child])) child++;
        if (!before(&items[child], &item)) break;
        items[i] = items[child];
        i = child;
    }
    items[i] = item;
}

static int heap_push(Heap *h, int64_t count, uint64_t key) {
    if (h->size == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        Entry *items = realloc(h->items, cap * sizeof(Entry));
        if (!items) return -1;
        h->items = items;
        h->cap = cap;
    }
    Entry item = {count, key};
    size_t i = h->size++;
    while (i) {
        size_t parent = (i - 1) / 2;
        if (!before(&item, &h->items[parent])) break;
        h->items[i] = h->items[parent];
        i = parent;
    }
    h->items[i] = item;
    return 0;
}

static Entry heap_pop(Heap *h) {
    Entry top = h->items[0];
    h->items[0] = h->items[--h->size];
    if (h->size) sift_down(h->items, h->size, 0);
    return top;
}

/* -- the loop ------------------------------------------------------------------------------- */

static void loop_free(Loop *loop) {
    free(loop->tokens);
    free(loop->start);
    free(loop->length);
    free(loop->weight);
    free(loop->ltoken);
    free(loop->lnext);
    free(loop->lprev);
    free(loop->lchunk);
    free(loop->lweight);
    table_free(&loop->pairs);
    free(loop->heap.items);
    free(loop->made);
}

static inline uint64_t pair_key(uint32_t left, uint32_t right) {
    return (uint64_t)left << 32 | right;
}

/* The UTF-8 length of a str, or -1 with a Python error set (a lone surrogate has none). Read
 * from the code points, so that the str does not keep a UTF-8 copy of itself. */
static Py_ssize_t utf8_size(PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text)) return n;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t size = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch < 0x80) size += 1;
        else if (ch < 0x800) size += 2;
        else if (ch < 0x10000) {
            if (ch >= 0xD800 && ch <= 0xDFFF) {
                PyErr_Format(PyExc_ValueError, "chunk_counts: a chunk holds the lone surrogate U+%04X", (unsigned)ch);
                return -1;
            }
            size += 3;
        } else size += 4;
    }
    return size;
}

/* Write the UTF-8 bytes of ``text`` as token ids. */
static void write_utf8(PyObject *text, uint32_t *out) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch < 0x80) {
            *out++ = ch;
        } else if (ch < 0x800) {
            *out++ = 0xC0 | (ch >> 6);
            *out++ = 0x80 | (ch & 0x3F);
        } else if (ch < 0x10000) {
            *out++ = 0xE0 | (ch >> 12);
            *out++ = 0x80 | ((ch >> 6) & 0x3F);
            *out++ = 0x80 | (ch & 0x3F);
        } else {
            *out++ = 0xF0 | (ch >> 18);
            *out++ = 0x80 | ((ch >> 12) & 0x3F);
            *out++ = 0x80 | ((ch >> 6) & 0x3F);
            *out++ = 0x80 | (ch & 0x3F);
        }
    }
}

/* Chunks as byte ids from the dict; -1 with a Python error set. */
/* Chunks as byte ids from the dict, those over ``long_chunk`` bytes as linked lists; -1 with a
 * Python error set. */
static int load_chunks(Loop *loop, PyObject *chunk_counts, Py_ssize_t long_chunk) {
    Py_ssize_t n = PyDict_Size(chunk_counts), pos = 0, total = 0, ltotal = 0, nlong = 0;
    PyObject *key, *value;
    /* first pass: check the entries and size the arrays once */
    while (PyDict_Next(chunk_counts, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "chunk_counts: every key must be a str");
            return -1;
        }
        if (!PyLong_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "chunk_counts: every count must be an int");
            return -1;
        }
        Py_ssize_t size = utf8_size(key);
        if (size < 0) return -1;
        if (size < 2) continue;
        if (size > long_chunk) {
            ltotal += size;
            nlong++;
        } else {
            total += size;
        }
    }
    if (ltotal >= (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "chunk_counts: over 4 GB of long chunks");
        return -1;
    }
    loop->tokens = malloc((total ? total : 1) * sizeof(uint32_t));
    loop->start = malloc((n ? n : 1) * sizeof(size_t));
    loop->length = malloc((n ? n : 1) * sizeof(uint32_t));
    loop->weight = malloc((n ? n : 1) * sizeof(int64_t));
    loop->ltoken = malloc((ltotal ? ltotal : 1) * sizeof(uint32_t));
    loop->lnext = malloc((ltotal ? ltotal : 1) * sizeof(uint32_t));
    loop->lprev = malloc((ltotal ? ltotal : 1) * sizeof(uint32_t));
    loop->lchunk = malloc((ltotal ? ltotal : 1) * sizeof(uint32_t));
    loop->lweight = malloc((nlong ? nlong : 1) * sizeof(int64_t));
    if (!loop->tokens || !loop->start || !loop->length || !loop->weight || !loop->ltoken ||
        !loop->lnext || !loop->lprev || !loop->lchunk || !loop->lweight) {
        PyErr_NoMemory();
        return -1;
    }
    size_t at = 0, count = 0, lat = 0, lcount = 0;
    pos = 0;
    while (PyDict_Next(chunk_counts, &pos, &key, &value)) {
        Py_ssize_t size = utf8_size(key);
        if (size < 2) continue;  /* no pairs */
        long long weight = PyLong_AsLongLong(value);
        if (weight == -1 && PyErr_Occurred()) return -1;
        if (weight < 1) continue;
        if (size > long_chunk) {
            write_utf8(key, loop->ltoken + lat);
            for (Py_ssize_t i = 0; i < size; i++) {
                loop->lprev[lat + i] = i ? (uint32_t)(lat + i - 1) : NONE;
                loop->lnext[lat + i] = i + 1 < size ? (uint32_t)(lat + i + 1) : NONE;
                loop->lchunk[lat + i] = (uint32_t)lcount;
            }
            loop->lweight[lcount++] = weight;
            lat += size;
            continue;
        }
        write_utf8(key, loop->tokens + at);
        loop->start[count] = at;
        loop->length[count] = (uint32_t)size;
        loop->weight[count] = weight;
        at += size;
        count++;
    }
    loop->count = count;
    loop->lsize = lat;
    loop->lcount = lcount;
    return 0;
}

static int count_pairs(Loop *loop) {
    if (table_init(&loop->pairs, loop->count) < 0) return -1;
    for (size_t c = 0; c < loop->count; c++) {
        const uint32_t *w = loop->tokens + loop->start[c];
        for (uint32_t i = 0; i + 1 < loop->length[c]; i++) {
            Pair *p = table_insert(&loop->pairs, pair_key(w[i], w[i + 1]));
            if (!p) return -1;
            p->count += loop->weight[c];
            if (note_chunk(p, (uint32_t)c) < 0) return -1;
        }
    }
    for (size_t i = 0; i < loop->lsize; i++) {
        if (loop->lnext[i] == NONE) continue;
        Pair *p = table_insert(&loop->pairs, pair_key(loop->ltoken[i], loop->ltoken[i + 1]));
        if (!p) return -1;
        p->count += loop->lweight[loop->lchunk[i]];
        if (note_position(p, (uint32_t)i) < 0) return -1;
    }
    /* every pair enters the heap; heapify in place */
    Heap *h = &loop->heap;
    PairTable *t = &loop->pairs;
    h->cap = t->used ? t->used : 1;
    h->items = malloc(h->cap * sizeof(Entry));
    if (!h->items) return -1;
    h->size = 0;
    for (size_t i = 0; i <= t->mask; i++)
        if (t->keys[i] != EMPTY_KEY) h->items[h->size++] = (Entry){t->pairs[t->index[i]].count, t->keys[i]};
    for (size_t i = h->size / 2; i-- > 0;) sift_down(h->items, h->size, i);
    return 0;
}

static inline void lose(Loop *loop, uint64_t key, int64_t n) {
    Pair *p = table_find(&loop->pairs, key);
    if (p) p->count -= n;
}

/* The pair made ``n`` more times in ``chunk`` (short) or at ``position`` (long: chunk NONE). */
static inline int gain(Loop *loop, uint64_t key, int64_t n, uint32_t chunk, uint32_t position, uint32_t merge) {
    Pair *p = table_insert(&loop->pairs, key);
    if (!p) return -1;
    p->count += n;
    if ((chunk != NONE ? note_chunk(p, chunk) : note_position(p, position)) < 0) return -1;
    if (p->touched != merge) {
        p->touched = merge;
        if (loop->nmade == loop->capmade) {
            size_t cap = loop->capmade ? loop->capmade * 2 : 256;
            uint64_t *made = realloc(loop->made, cap * sizeof(uint64_t));
            if (!made) return -1;
            loop->made = made;
            loop->capmade = cap;
        }
        loop->made[loop->nmade++] = key;
    }
    return 0;
}

/* Merge (a, b) into ``t`` in the chunks listed for it; ``merge`` is 1-based. */
static int merge_pair(Loop *loop, uint64_t key, uint32_t t, uint32_t merge) {
    uint32_t a = (uint32_t)(key >> 32), b = (uint32_t)key;
    Pair *p = table_find(&loop->pairs, key);
    /* take the lists out of the table: inserts below may move the record */
    uint32_t *where = p->where, nwhere = p->nwhere, *at = p->at, nat = p->nat;
    p->where = p->at = NULL;
    p->nwhere = p->capwhere = p->nat = p->capat = 0;
    p->count = 0;
    loop->nmade = 0;
    int status = 0;
    for (uint32_t k = 0; k < nwhere && status == 0; k++) {
        uint32_t c = where[k];
        uint32_t *w = loop->tokens + loop->start[c];
        uint32_t n = loop->length[c], out = 0, i = 0;
        int64_t weight = loop->weight[c];
        while (i < n) {
            if (i + 1 < n && w[i] == a && w[i + 1] == b) {
                if (out) {
                    uint32_t x = w[out - 1];
                    lose(loop, pair_key(x, a), weight);
                    if (gain(loop, pair_key(x, t), weight, c, 0, merge) < 0) { status = -1; break; }
                }
                if (i + 2 < n) {
                    uint32_t y = w[i + 2];
                    lose(loop, pair_key(b, y), weight);
                    if (gain(loop, pair_key(t, y), weight, c, 0, merge) < 0) { status = -1; break; }
                }
                w[out++] = t;
                i += 2;
            } else {
                w[out++] = w[i++];
            }
        }
        loop->length[c] = out;
    }
    free(where);
    /* in long chunks, position by position, left to right: a position whose token an earlier
     * occurrence took (a a a), or that lost the pair since it was listed, is skipped */
    uint32_t *token = loop->ltoken, *next = loop->lnext, *prev = loop->lprev;
    for (uint32_t k = 0; k < nat && status == 0; k++) {
        uint32_t i = at[k], j = next[i];
        if (token[i] != a || j == NONE || token[j] != b) continue;
        int64_t weight = loop->lweight[loop->lchunk[i]];
        uint32_t h = prev[i], l = next[j];
        if (h != NONE) {
            lose(loop, pair_key(token[h], a), weight);
            if (gain(loop, pair_key(token[h], t), weight, NONE, h, merge) < 0) status = -1;
        }
        if (l != NONE && status == 0) {
            lose(loop, pair_key(b, token[l]), weight);
            if (gain(loop, pair_key(t, token[l]), weight, NONE, i, merge) < 0) status = -1;
        }
        token[i] = t;
        token[j] = DEAD;
        next[i] = l;
        if (l != NONE) prev[l] = i;
    }
    free(at);
    if (status < 0) return -1;
    /* the merged pair lost its occurrences above as neighbours too; none are left */
    p = table_find(&loop->pairs, key);
    p->count = 0;
    for (size_t m = 0; m < loop->nmade; m++) {
        Pair *q = table_find(&loop->pairs, loop->made[m]);
        if (q->count > 0 && heap_push(&loop->heap, q->count, loop->made[m]) < 0) return -1;
    }
    return 0;
}

static PyObject *learn_merges(PyObject *self, PyObject *args, PyObject *kwargs) {
    (void)self;
    static char *keywords[] = {"chunk_counts", "num_merges", "on_progress", "consume", "long_chunk", NULL};
    PyObject *chunk_counts, *on_progress = Py_None;
    Py_ssize_t num_merges, long_chunk = LONG_CHUNK;
    int consume = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!n|Opn", keywords, &PyDict_Type, &chunk_counts,
                                     &num_merges, &on_progress, &consume, &long_chunk))
        return NULL;
    if (num_merges < 0 || num_merges > (Py_ssize_t)UINT32_MAX - 256) {
        PyErr_SetString(PyExc_ValueError, "num_merges: out of range");
        return NULL;
    }
    Loop loop;
    memset(&loop, 0, sizeof loop);
    PyObject *merges = PyList_New(0);
    if (!merges) return NULL;
    if (load_chunks(&loop, chunk_counts, long_chunk) < 0) goto fail;
    if (consume) PyDict_Clear(chunk_counts);  /* the loop has its own copy, far smaller */
    if (count_pairs(&loop) < 0) goto nomem;

    while (PyList_GET_SIZE(merges) < num_merges && loop.heap.size) {
        Entry top = heap_pop(&loop.heap);
        Pair *p = table_find(&loop.pairs, top.key);
        if (p->count <= 0) continue;
        if (p->count != top.count) {  /* stale: it lost occurrences since it was pushed */
            if (heap_push(&loop.heap, p->count, top.key) < 0) goto nomem;
            continue;
        }
        Py_ssize_t done = PyList_GET_SIZE(merges);
        if (merge_pair(&loop, top.key, (uint32_t)(256 + done), (uint32_t)(done + 1)) < 0) goto nomem;
        PyObject *merge = Py_BuildValue("(kk)", (unsigned long)(top.key >> 32), (unsigned long)(uint32_t)top.key);
        if (!merge || PyList_Append(merges, merge) < 0) {
            Py_XDECREF(merge);
            goto fail;
        }
        Py_DECREF(merge);
        if ((done + 1) % PROGRESS_EVERY == 0) {
            if (PyErr_CheckSignals() < 0) goto fail;
            if (on_progress != Py_None) {
                PyObject *r = PyObject_CallFunction(on_progress, "n", done + 1);
                if (!r) goto fail;
                Py_DECREF(r);
            }
        }
    }
    if (on_progress != Py_None) {
        PyObject *r = PyObject_CallFunction(on_progress, "n", PyList_GET_SIZE(merges));
        if (!r) goto fail;
        Py_DECREF(r);
    }
    loop_free(&loop);
    return merges;

nomem:
    PyErr_NoMemory();
fail:
    loop_free(&loop);
    Py_DECREF(merges);
    return NULL;
}

static PyMethodDef methods[] = {
    {"learn_merges", (PyCFunction)(void (*)(void))learn_merges, METH_VARARGS | METH_KEYWORDS,
     "learn_merges(chunk_counts, num_merges, on_progress=None, consume=False, long_chunk=8192)\n"
     "    -> list of (left, right)\n\n"
     "The BPE merges of chunk_counts (chunk text -> count), most frequent pair first, ties to the\n"
     "smallest (left, right); merge i makes token 256 + i. Fewer come back when no pairs are left.\n"
     "With consume, chunk_counts is emptied once the loop has read it. Chunks over long_chunk\n"
     "bytes are merged position by position."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tokenizer._bpe_merge",
    "The BPE merge loop, compiled (see tokenizer.bpe_merge).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__bpe_merge(void) { return PyModule_Create(&module); }

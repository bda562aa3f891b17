/* Splitting text into chunks and counting them, compiled, for the two named split patterns
 * (tokenizer/patterns.py: nanochat's and GPT-4's, which differ only in how many digits make a
 * chunk). In Python the split is ``re.findall`` and the count ``Counter.update``: a str object
 * and a dict update for every chunk of the corpus. Here the pattern is a hand-written scanner
 * over a class table, and a call counts into a table of its own that refers to the chunks in
 * place: a Python str is made once per distinct chunk of the call, not once per chunk.
 *
 * count_chunks(texts, class_texts, classes, max_digits, counts) -> None
 *
 *   texts        list of str: the documents, whose chunks are counted
 *   class_texts  list of str, the same lengths: the text whose characters are classified (the
 *                document itself, or with each character beyond the BMP replaced by a BMP
 *                stand-in of the same classes; see train_split.AstralStandIns)
 *   classes      bytes of 65536: per BMP code point, LETTER | NUMBER | SPACE as tiktoken's
 *                regex engine has \p{L}, \p{N} and \s
 *   max_digits   2 (nanochat) or 3 (GPT-4)
 *   counts       dict str -> int, added to
 *
 * The pattern, alternatives tried in order at each position (leftmost first, as both regex
 * engines do):
 *   '(?i:[sdmt]|ll|ve|re) | [^\r\n\p{L}\p{N}]?+\p{L}+ | \p{N}{1,D} | ?[^\s\p{L}\p{N}]++[\r\n]*
 *   | \s*[\r\n] | \s+(?!\S) | \s+
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LETTER 1
#define NUMBER 2
#define SPACE 4

typedef struct {
    uint64_t hash;  /* 0: free slot */
    uint32_t text;  /* where the chunk was first seen: texts[text][start:start + length] */
    uint32_t length;
    Py_ssize_t start;
    int64_t count;
} Slot;

typedef struct {
    Slot *slots;
    size_t mask, used;
} Table;

typedef struct {
    int kind;
    const void *data;
} Text;

static inline Py_UCS4 at(const Text *t, Py_ssize_t i) { return PyUnicode_READ(t->kind, t->data, i); }

static inline int is_s_letter(Py_UCS4 c) { return c == 's' || c == 'S' || c == 0x17F; }  /* ſ folds to s */

/* The end of the chunk that starts at ``i`` (``cls``: classes of the class text's characters). */
static Py_ssize_t chunk_end(const Text *t, Py_ssize_t i, Py_ssize_t n, const uint8_t *classes, int max_digits) {
#define CLS(j) (classes[at(t, (j))])
    Py_UCS4 c = at(t, i);
    /* '(?i:[sdmt]|ll|ve|re) */
    if (c == '\'' && i + 1 < n) {
        Py_UCS4 c1 = at(t, i + 1);
        if (is_s_letter(c1) || c1 == 'd' || c1 == 'D' || c1 == 'm' || c1 == 'M' || c1 == 't' || c1 == 'T')
            return i + 2;
        if (i + 2 < n) {
            Py_UCS4 c2 = at(t, i + 2);
            if (((c1 == 'l' || c1 == 'L') && (c2 == 'l' || c2 == 'L')) ||
                ((c1 == 'v' || c1 == 'V') && (c2 == 'e' || c2 == 'E')) ||
                ((c1 == 'r' || c1 == 'R') && (c2 == 'e' || c2 == 'E')))
                return i + 3;
        }
    }
    uint8_t k = CLS(i);
    /* [^\r\n\p{L}\p{N}]?+\p{L}+ : the optional character, if there, is taken for good */
    {
        Py_ssize_t j = i;
        if (c != '\r' && c != '\n' && !(k & (LETTER | NUMBER))) j++;
        Py_ssize_t e = j;
        while (e < n && (CLS(e) & LETTER)) e++;
        if (e > j) return e;
    }
    /* \p{N}{1,D} */
    if (k & NUMBER) {
        Py_ssize_t e = i + 1;
        while (e < n && e - i < max_digits && (CLS(e) & NUMBER)) e++;
        return e;
    }
    /*  ?[^\s\p{L}\p{N}]++[\r\n]* */
    {
        Py_ssize_t j = (c == ' ') ? i + 1 : i;
        Py_ssize_t e = j;
        while (e < n && !(CLS(e) & (LETTER | NUMBER | SPACE))) e++;
        if (e > j) {
            while (e < n && (at(t, e) == '\r' || at(t, e) == '\n')) e++;
            return e;
        }
    }
    /* what is left starts with white space (every character is a letter, a number, white space
     * or none of those) */
    Py_ssize_t run = i;
    while (run < n && (CLS(run) & SPACE)) run++;
    /* \s*[\r\n] : up to the last line break of the run */
    for (Py_ssize_t p = run; p-- > i;) {
        Py_UCS4 b = at(t, p);
        if (b == '\r' || b == '\n') return p + 1;
    }
    /* \s+(?!\S) : the run, less its last character when text follows */
    if (run == n) return run;
    if (run - 1 > i) return run - 1;
    /* \s+ */
    if (run > i) return run;
    return i + 1;  /* not reached for a class table that classifies every character */
#undef CLS
}

static inline uint64_t hash_span(const Text *t, Py_ssize_t start, Py_ssize_t end) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (Py_ssize_t i = start; i < end; i++) {
        h ^= at(t, i);
        h *= 0x100000001b3ull;
    }
    h ^= h >> 29;
    return h ? h : 1;
}

static int table_grow(Table *table) {
    size_t cap = (table->mask + 1) * 2;
    Slot *slots = calloc(cap, sizeof(Slot));
    if (!slots) return -1;
    for (size_t i = 0; i <= table->mask; i++) {
        Slot *s = &table->slots[i];
        if (!s->hash) continue;
        size_t j = s->hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(table->slots);
    table->slots = slots;
    table->mask = cap - 1;
    return 0;
}

static int same_span(const Text *a, Py_ssize_t as, const Text *b, Py_ssize_t bs, Py_ssize_t length) {
    if (a->kind == b->kind)
        return memcmp((const char *)a->data + as * a->kind, (const char *)b->data + bs * b->kind,
                      (size_t)length * a->kind) == 0;
    for (Py_ssize_t i = 0; i < length; i++)
        if (at(a, as + i) != at(b, bs + i)) return 0;
    return 1;
}

static int count_chunk(Table *table, const Text *texts, uint32_t text, Py_ssize_t start, Py_ssize_t end) {
    const Text *t = &texts[text];
    uint64_t hash = hash_span(t, start, end);
    Py_ssize_t length = end - start;
    size_t i = hash & table->mask;
    for (;;) {
        Slot *s = &table->slots[i];
        if (!s->hash) break;
        if (s->hash == hash && s->length == length && same_span(&texts[s->text], s->start, t, start, length)) {
            s->count++;
            return 0;
        }
        i = (i + 1) & table->mask;
    }
    if ((table->used + 1) * 2 > table->mask + 1) {
        if (table_grow(table) < 0) return -1;
        return count_chunk(table, texts, text, start, end);
    }
    table->slots[i] = (Slot){hash, text, (uint32_t)length, start, 1};
    table->used++;
    return 0;
}

static PyObject *count_chunks(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *texts, *class_texts, *counts;
    Py_buffer classes;
    int max_digits;
    if (!PyArg_ParseTuple(args, "O!O!y*iO!", &PyList_Type, &texts, &PyList_Type, &class_texts, &classes,
                          &max_digits, &PyDict_Type, &counts))
        return NULL;
    PyObject *result = NULL;
    Text *chunk_texts = NULL, *class_of = NULL;
    Table table = {NULL, 0, 0};
    Py_ssize_t n = PyList_GET_SIZE(texts);
    if (classes.len != 0x10000 || PyList_GET_SIZE(class_texts) != n || n > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "count_chunks: a class table of 65536 bytes and one class text per text");
        goto done;
    }
    chunk_texts = malloc((n ? n : 1) * sizeof(Text));
    class_of = malloc((n ? n : 1) * sizeof(Text));
    table.slots = calloc(1 << 14, sizeof(Slot));
    table.mask = (1 << 14) - 1;
    if (!chunk_texts || !class_of || !table.slots) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t d = 0; d < n; d++) {
        PyObject *text = PyList_GET_ITEM(texts, d), *class_text = PyList_GET_ITEM(class_texts, d);
        if (!PyUnicode_Check(text) || !PyUnicode_Check(class_text) ||
            PyUnicode_GET_LENGTH(text) != PyUnicode_GET_LENGTH(class_text)) {
            PyErr_SetString(PyExc_TypeError, "count_chunks: texts and class texts: str of the same lengths");
            goto done;
        }
        if (PyUnicode_MAX_CHAR_VALUE(class_text) > 0xFFFF) {
            PyErr_SetString(PyExc_ValueError, "count_chunks: a class text beyond the BMP");
            goto done;
        }
        chunk_texts[d] = (Text){PyUnicode_KIND(text), PyUnicode_DATA(text)};
        class_of[d] = (Text){PyUnicode_KIND(class_text), PyUnicode_DATA(class_text)};
    }
    const uint8_t *table_of_classes = classes.buf;
    size_t chunks = 0;
    for (Py_ssize_t d = 0; d < n; d++) {
        Py_ssize_t length = PyUnicode_GET_LENGTH(PyList_GET_ITEM(texts, d));
        for (Py_ssize_t i = 0; i < length;) {
            Py_ssize_t end = chunk_end(&class_of[d], i, length, table_of_classes, max_digits);
            if (count_chunk(&table, chunk_texts, (uint32_t)d, i, end) < 0) {
                PyErr_NoMemory();
                goto done;
            }
            i = end;
            /* a document of gigabytes is one call: let Ctrl+C through */
            if (++chunks % (1u << 20) == 0 && PyErr_CheckSignals() < 0) goto done;
        }
    }
    /* into the dict: one str per distinct chunk */
    for (size_t i = 0; i <= table.mask; i++) {
        Slot *s = &table.slots[i];
        if (!s->hash) continue;
        PyObject *chunk = PyUnicode_Substring(PyList_GET_ITEM(texts, s->text), s->start, s->start + s->length);
        if (!chunk) goto done;
        PyObject *total = PyLong_FromLongLong(s->count);
        PyObject *old = total ? PyDict_GetItemWithError(counts, chunk) : NULL;  /* borrowed */
        if (old) {
            PyObject *sum = PyNumber_Add(old, total);
            Py_DECREF(total);
            total = sum;
        } else if (PyErr_Occurred()) {
            Py_CLEAR(total);
        }
        int status = total ? PyDict_SetItem(counts, chunk, total) : -1;
        Py_DECREF(chunk);
        Py_XDECREF(total);
        if (status < 0) goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    free(table.slots);
    free(chunk_texts);
    free(class_of);
    PyBuffer_Release(&classes);
    return result;
}

static PyMethodDef methods[] = {
    {"count_chunks", count_chunks, METH_VARARGS,
     "count_chunks(texts, class_texts, classes, max_digits, counts) -> None\n\n"
     "Add the chunk counts of texts, split by a named pattern, to counts (see the module source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tokenizer._chunk_count",
    "The named patterns' split and chunk counting, compiled (see tokenizer.train_split).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__chunk_count(void) { return PyModule_Create(&module); }

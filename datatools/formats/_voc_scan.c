/* datatools.formats._voc_scan: the regular VOC document read in C, for speed.
 *
 * scan(data: bytes, lo: float, hi: float) returns, for a document that datatools.formats.voc reads without any
 * finding, the same values as voc._regular_document() with the boxes converted by voc_to_xyxy():
 *
 *     (file_name, width, height, depth, names, boxes, flags, attrs)
 *
 * names, flags and attrs have one entry per object (flags: bit 0 difficult, 1 truncated, 2 occluded; attrs: the
 * sorted (tag, text) pairs of the object's extra leaf tags), boxes four floats per object, XYXY.
 *
 * It returns None for everything else, and the caller then reads the document with lxml, which gives every
 * finding. The accepted XML is a strict subset that lxml parses to the same tree: an optional <?xml?>
 * declaration (version 1.0, UTF-8), elements with well-formed attributes, text without '&' or '>', plain
 * whitespace around the root. Comments, processing instructions, CDATA, DOCTYPE, entity and character
 * references, namespaces, a byte-order mark, control characters, invalid UTF-8, nesting deeper than MAX_DEPTH
 * and files over MAX_BYTES all give None. Every value is checked with Python's own rules (float(), str.strip(),
 * round()), so that the two readers cannot differ on a document this one accepts (tests/test_voc_scan.py compares
 * them on real-world, generated and mutated files).
 *
 * Nothing here allocates in proportion to the input except the result; the parser never reads past the end of
 * the buffer, and keeps no pointers beyond it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_BYTES (1 << 22)
#define MAX_ATTRS 32
#define MAX_NAME 1000    /* libxml2 refuses names over 50,000 bytes; nothing real comes near this */

/* What an element is to the reader, from its place in the tree. */
enum role {
    R_IGNORED,   /* read for well-formedness only */
    R_ROOT,      /* <annotation> */
    R_OBJECT,    /* <annotation>/<object> */
    R_FILENAME,  /* the first <annotation>/<filename> */
    R_SIZE,      /* the first <annotation>/<size> */
    R_DIM,       /* the first <width>/<height>/<depth> of that <size> */
    R_NAME,      /* <object>/<name> */
    R_BNDBOX,    /* <object>/<bndbox> */
    R_COORD,     /* <bndbox>/<xmin|ymin|xmax|ymax> */
    R_FLAG,      /* <object>/<difficult|truncated|occluded> */
    R_ATTR,      /* <object>/<pose> or a tag voc.py does not know: an extra leaf tag */
};

typedef struct {
    const char *tag;
    Py_ssize_t tag_len;
    int role;
    int index;            /* R_DIM: 0 width, 1 height, 2 depth; R_COORD: 0-3; R_FLAG: 0-2 */
    const char *text;     /* character data before the first child (lxml's .text); NULL when empty */
    Py_ssize_t text_len;
    int has_child;
} Element;

/* One object's fields while its element is open. */
typedef struct {
    const char *name;
    Py_ssize_t name_len;
    int has_name, has_bndbox, coords_seen, flags_seen;
    double coord[4];
    int flag[3];
    PyObject *attrs;      /* list of (tag, text) or NULL */
} Object;

typedef struct {
    const char *p, *end;
    int non_ascii;
    int depth;
    /* the document */
    const char *file_name;
    Py_ssize_t file_name_len;
    int has_file_name, has_size;
    const char *dim[3];
    Py_ssize_t dim_len[3];
    int dim_seen[3];
    Object obj;
    double lo, hi;
    PyObject *names, *boxes, *flags, *attrs;
    Element stack[MAX_DEPTH];  /* last: only the fields above are zeroed for each document */
} Scanner;

/* Byte classes, filled in by the module's init. */
enum { C_SPACE = 1, C_NAME_START = 2, C_NAME = 4, C_TEXT_STOP = 8, C_HIGH = 16 };
static unsigned char cls[256];

static void init_classes(void) {
    int c;
    for (c = 0; c < 256; c++) {
        unsigned char k = 0;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') k |= C_SPACE;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') k |= C_NAME_START | C_NAME;
        if ((c >= '0' && c <= '9') || c == '-' || c == '.') k |= C_NAME;
        /* where character data stops: a tag, a reference, '>' (which ']]>' needs), a control character */
        if (c == '<' || c == '&' || c == '>' || (c < 0x20 && !(k & C_SPACE))) k |= C_TEXT_STOP;
        if (c >= 0x80) k |= C_HIGH;
        cls[c] = k;
    }
}

#define CLS(c) (cls[(unsigned char)(c)])
static int is_space(char c) { return CLS(c) & C_SPACE; }

static int tag_is(const Element *e, const char *s) {
    size_t n = strlen(s);
    return (size_t)e->tag_len == n && memcmp(e->tag, s, n) == 0;
}

/* A str of the given bytes, decoded as UTF-8 (already validated when the document holds non-ASCII bytes). */
static PyObject *text_str(const char *s, Py_ssize_t n) { return PyUnicode_DecodeUTF8(s, n, "strict"); }

/* float(text) with Python's rules, finite; returns 0 and leaves no error set when it is not a finite number.
 * Plain ASCII numbers (digits, sign, point, exponent, between XML whitespace) go straight to the conversion that
 * float() ends in, PyOS_string_to_double; anything else (underscores, Unicode digits or spaces) through float(). */
static int finite_float(const char *s, Py_ssize_t n, double *out) {
    PyObject *str, *f;
    const char *a = s, *b = s + n;
    while (a < b && is_space(*a)) a++;
    while (b > a && is_space(b[-1])) b--;
    if (b > a && b - a < 64) {
        char buf[64];
        const char *q;
        for (q = a; q < b; q++)
            if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == '-' || *q == '+' || *q == 'e' || *q == 'E')) break;
        if (q == b) {
            memcpy(buf, a, b - a);
            buf[b - a] = '\0';
            *out = PyOS_string_to_double(buf, NULL, NULL);
            if (*out == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
            return isfinite(*out);
        }
    }
    str = text_str(s, n);
    if (str == NULL) { PyErr_Clear(); return 0; }
    f = PyFloat_FromString(str);
    Py_DECREF(str);
    if (f == NULL) { PyErr_Clear(); return 0; }
    *out = PyFloat_AS_DOUBLE(f);
    Py_DECREF(f);
    return isfinite(*out);
}

/* text.strip() as Python does it (Unicode whitespace); NULL with no error set when the result holds a '\r'
 * (lxml turns line ends into '\n', so the raw bytes would read differently). */
static PyObject *stripped(const char *s, Py_ssize_t n) {
    PyObject *str = text_str(s, n), *out;
    Py_ssize_t a = 0, b;
    if (str == NULL) { PyErr_Clear(); return NULL; }
    b = PyUnicode_GET_LENGTH(str);
    while (a < b && Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(str, a))) a++;
    while (b > a && Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(str, b - 1))) b--;
    if (PyUnicode_FindChar(str, '\r', a, b, 1) != -1) { Py_DECREF(str); return NULL; }
    if (a == 0 && b == PyUnicode_GET_LENGTH(str)) return str;
    out = PyUnicode_Substring(str, a, b);
    Py_DECREF(str);
    if (out == NULL) PyErr_Clear();
    return out;
}

/* The role of a new element below `parent`. Returns -1 when the document is not regular. */
static int role_of(Scanner *sc, Element *parent, Element *e) {
    static const char *coords[4] = {"xmin", "ymin", "xmax", "ymax"};
    static const char *flags[3] = {"difficult", "truncated", "occluded"};
    static const char *dims[3] = {"width", "height", "depth"};
    int i;
    e->index = 0;
    if (parent == NULL) return tag_is(e, "annotation") ? R_ROOT : -1;
    switch (parent->role) {
    case R_ROOT:
        if (tag_is(e, "object")) return R_OBJECT;
        if (tag_is(e, "filename") && !sc->has_file_name) return R_FILENAME;
        if (tag_is(e, "size") && !sc->has_size) return R_SIZE;
        return R_IGNORED;
    case R_SIZE:
        for (i = 0; i < 3; i++)
            if (tag_is(e, dims[i])) {
                if (sc->dim_seen[i]) return R_IGNORED;  /* the first one wins, as in voc._size_of */
                e->index = i;
                return R_DIM;
            }
        return R_IGNORED;
    case R_OBJECT:
        if (tag_is(e, "name")) return sc->obj.has_name ? -1 : R_NAME;
        if (tag_is(e, "bndbox")) return sc->obj.has_bndbox ? -1 : R_BNDBOX;
        for (i = 0; i < 3; i++)
            if (tag_is(e, flags[i])) {
                if (sc->obj.flags_seen & (1 << i)) return -1;
                e->index = i;
                return R_FLAG;
            }
        if (tag_is(e, "part") || tag_is(e, "actions") || tag_is(e, "point") || tag_is(e, "attributes")) return -1;
        return R_ATTR;
    case R_BNDBOX:
        for (i = 0; i < 4; i++)
            if (tag_is(e, coords[i])) {
                if (sc->obj.coords_seen & (1 << i)) return -1;
                e->index = i;
                return R_COORD;
            }
        return -1;
    case R_ATTR:
        return -1;  /* an extra tag with children */
    default:
        return R_IGNORED;
    }
}

/* An element opens: its role, and what opening it means. 0 on success, -1 when not regular, -2 on error. */
static int open_element(Scanner *sc, Element *e) {
    Element *parent = sc->depth ? &sc->stack[sc->depth - 1] : NULL;
    int role;
    if (parent) parent->has_child = 1;
    role = role_of(sc, parent, e);
    if (role < 0) return -1;
    e->role = role;
    e->text = NULL;
    e->text_len = 0;
    e->has_child = 0;
    switch (role) {
    case R_FILENAME: sc->has_file_name = 1; break;
    case R_SIZE: sc->has_size = 1; break;
    case R_DIM: sc->dim_seen[e->index] = 1; break;
    case R_OBJECT:
        memset(&sc->obj, 0, sizeof(sc->obj));
        break;
    case R_NAME: sc->obj.has_name = 1; break;
    case R_BNDBOX: sc->obj.has_bndbox = 1; break;
    case R_FLAG: sc->obj.flags_seen |= 1 << e->index; break;
    case R_COORD: sc->obj.coords_seen |= 1 << e->index; break;
    default: break;
    }
    return 0;
}

static int finish_object(Scanner *sc) {
    Object *o = &sc->obj;
    PyObject *name, *v;
    double *c = o->coord;
    int i, bits = 0;
    if (!o->has_name || o->name == NULL || !o->has_bndbox || o->coords_seen != 15) return -1;
    if (c[0] == c[2] || c[1] == c[3]) return -1;
    name = text_str(o->name, o->name_len);
    if (name == NULL) { PyErr_Clear(); return -1; }
    {   /* name.strip() == name, and no '\r' that lxml would have read as '\n' */
        Py_ssize_t n = PyUnicode_GET_LENGTH(name);
        if (Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(name, 0)) || Py_UNICODE_ISSPACE(PyUnicode_READ_CHAR(name, n - 1))
            || PyUnicode_FindChar(name, '\r', 0, n, 1) != -1) {
            Py_DECREF(name);
            return -1;
        }
    }
    if (PyList_Append(sc->names, name) < 0) { Py_DECREF(name); return -2; }
    Py_DECREF(name);
    for (i = 0; i < 4; i++) {
        v = PyFloat_FromDouble(c[i] + (i < 2 ? sc->lo : sc->hi));
        if (v == NULL || PyList_Append(sc->boxes, v) < 0) { Py_XDECREF(v); return -2; }
        Py_DECREF(v);
    }
    for (i = 0; i < 3; i++) bits |= o->flag[i] << i;
    v = PyLong_FromLong(bits);
    if (v == NULL || PyList_Append(sc->flags, v) < 0) { Py_XDECREF(v); return -2; }
    Py_DECREF(v);
    if (o->attrs == NULL) {
        v = PyTuple_New(0);
    } else {
        Py_ssize_t k, n;
        if (PyList_Sort(o->attrs) < 0) return -2;
        n = PyList_GET_SIZE(o->attrs);
        for (k = 1; k < n; k++) {  /* a repeated extra tag: the general path keeps the first */
            int same = PyUnicode_Compare(PyTuple_GET_ITEM(PyList_GET_ITEM(o->attrs, k - 1), 0),
                                         PyTuple_GET_ITEM(PyList_GET_ITEM(o->attrs, k), 0));
            if (same == -1 && PyErr_Occurred()) return -2;
            if (same == 0) return -1;
        }
        v = PyList_AsTuple(o->attrs);
    }
    if (v == NULL || PyList_Append(sc->attrs, v) < 0) { Py_XDECREF(v); return -2; }
    Py_DECREF(v);
    Py_CLEAR(o->attrs);
    return 0;
}

/* An element closes. 0, -1 (not regular) or -2 (error). */
static int close_element(Scanner *sc, Element *e) {
    Object *o = &sc->obj;
    switch (e->role) {
    case R_FILENAME:
        sc->file_name = e->text;
        sc->file_name_len = e->text_len;
        break;
    case R_DIM:
        sc->dim[e->index] = e->text;
        sc->dim_len[e->index] = e->text_len;
        break;
    case R_NAME:
        if (e->text == NULL) return -1;
        o->name = e->text;
        o->name_len = e->text_len;
        break;
    case R_COORD:
        if (e->text == NULL || !finite_float(e->text, e->text_len, &o->coord[e->index])) return -1;
        break;
    case R_FLAG:
        if (e->text_len != 1 || (e->text[0] != '0' && e->text[0] != '1')) return -1;
        o->flag[e->index] = e->text[0] == '1';
        break;
    case R_ATTR: {
        PyObject *tag, *text, *pair;  /* (a child was refused when it opened: see role_of) */
        text = stripped(e->text ? e->text : "", e->text_len);
        if (text == NULL) return PyErr_Occurred() ? -2 : -1;
        tag = PyUnicode_FromStringAndSize(e->tag, e->tag_len);
        if (tag == NULL) { Py_DECREF(text); return -2; }
        pair = PyTuple_Pack(2, tag, text);
        Py_DECREF(tag);
        Py_DECREF(text);
        if (pair == NULL) return -2;
        if (o->attrs == NULL && (o->attrs = PyList_New(0)) == NULL) { Py_DECREF(pair); return -2; }
        if (PyList_Append(o->attrs, pair) < 0) { Py_DECREF(pair); return -2; }
        Py_DECREF(pair);
        break;
    }
    case R_OBJECT:
        return finish_object(sc);
    default:
        break;
    }
    return 0;
}

/* A name at sc->p (ASCII letters, digits, '_', '-', '.'; no ':'), or 0 when there is none. */
static Py_ssize_t read_name(Scanner *sc) {
    const char *s = sc->p;
    if (s >= sc->end || !(CLS(*s) & C_NAME_START)) return 0;
    while (s < sc->end && (CLS(*s) & C_NAME)) s++;
    return s - sc->p > MAX_NAME ? 0 : s - sc->p;
}

static void skip_space(Scanner *sc) { while (sc->p < sc->end && is_space(*sc->p)) sc->p++; }

/* `= "value"` (or 'value') after an attribute's name: the value, which holds no '<', '&' or control character. 0 or -1. */
static int read_value(Scanner *sc, const char **value, Py_ssize_t *len) {
    char quote;
    skip_space(sc);
    if (sc->p >= sc->end || *sc->p != '=') return -1;
    sc->p++;
    skip_space(sc);
    if (sc->p >= sc->end || (*sc->p != '"' && *sc->p != '\'')) return -1;
    quote = *sc->p++;
    *value = sc->p;
    while (sc->p < sc->end && *sc->p != quote) {
        unsigned char c = (unsigned char)*sc->p;
        if (c == '<' || c == '&' || (c < 0x20 && !(CLS(c) & C_SPACE))) return -1;
        if (c >= 0x80) sc->non_ascii = 1;
        sc->p++;
    }
    if (sc->p >= sc->end) return -1;
    *len = sc->p - *value;
    sc->p++;
    return 0;
}

/* Attributes and the end of a start tag, after its name. Sets *empty for "/>". 0 or -1. */
static int read_attributes(Scanner *sc, int *empty) {
    const char *names[MAX_ATTRS];
    Py_ssize_t lens[MAX_ATTRS];
    int n = 0, i;
    for (;;) {
        const char *before = sc->p, *value;
        Py_ssize_t len;
        skip_space(sc);
        if (sc->p >= sc->end) return -1;
        if (*sc->p == '>') { sc->p++; *empty = 0; return 0; }
        if (*sc->p == '/') {
            if (sc->p + 1 < sc->end && sc->p[1] == '>') { sc->p += 2; *empty = 1; return 0; }
            return -1;
        }
        if (sc->p == before) return -1;  /* attributes are separated by whitespace */
        len = read_name(sc);
        if (len == 0 || n == MAX_ATTRS) return -1;
        if (len >= 5 && memcmp(sc->p, "xmlns", 5) == 0) return -1;  /* namespaces change the tag names */
        for (i = 0; i < n; i++)
            if (lens[i] == len && memcmp(names[i], sc->p, len) == 0) return -1;  /* lxml refuses a repeat */
        names[n] = sc->p;
        lens[n++] = len;
        sc->p += len;
        if (read_value(sc, &value, &len) < 0) return -1;
    }
}

/* <?xml version="1.0" encoding="utf-8" standalone="yes"?> at the very start, each part but the version optional.
 * 0 when absent or acceptable, -1 otherwise. */
static int read_declaration(Scanner *sc) {
    static const char *keys[3] = {"version", "encoding", "standalone"};
    int k;
    if (sc->end - sc->p < 5 || memcmp(sc->p, "<?xml", 5) != 0) return 0;
    sc->p += 5;
    for (k = 0; k < 3; k++) {
        const char *save = sc->p, *v;
        size_t n = strlen(keys[k]);
        Py_ssize_t len;
        skip_space(sc);
        if (sc->p == save || (size_t)(sc->end - sc->p) < n || memcmp(sc->p, keys[k], n) != 0) {
            if (k == 0) return -1;
            sc->p = save;
            continue;
        }
        sc->p += n;
        if (read_value(sc, &v, &len) < 0) return -1;
        if (k == 0 && !(len == 3 && memcmp(v, "1.0", 3) == 0)) return -1;
        if (k == 1 && !(len == 5 && PyOS_strnicmp(v, "utf-8", 5) == 0)) return -1;
        if (k == 2 && !((len == 3 && memcmp(v, "yes", 3) == 0) || (len == 2 && memcmp(v, "no", 2) == 0))) return -1;
    }
    skip_space(sc);
    if (sc->end - sc->p < 2 || sc->p[0] != '?' || sc->p[1] != '>') return -1;
    sc->p += 2;
    return 0;
}

/* The whole document. 0 when regular, -1 when not, -2 on error. */
static int scan_document(Scanner *sc) {
    int r, seen_root = 0;
    if (read_declaration(sc) < 0) return -1;
    skip_space(sc);
    while (sc->p < sc->end) {
        const char *s = sc->p;
        if (*s != '<') {
            /* character data up to the next tag */
            const char *t = s;
            for (;;) {
                while (t < sc->end && !(CLS(*t) & (C_TEXT_STOP | C_HIGH))) t++;
                if (t == sc->end || *t == '<') break;
                if (!(CLS(*t) & C_HIGH)) return -1;  /* '&', '>' or a control character */
                sc->non_ascii = 1;
                t++;
            }
            if (sc->depth == 0) {
                while (s < t && is_space(*s)) s++;
                if (s != t) return -1;  /* text outside the root */
            } else {
                Element *e = &sc->stack[sc->depth - 1];
                if (!e->has_child) { e->text = s; e->text_len = t - s; }
            }
            sc->p = t;
            continue;
        }
        if (s + 1 >= sc->end) return -1;
        if (s[1] == '/') {
            Element *e;
            Py_ssize_t len;
            if (sc->depth == 0) return -1;
            e = &sc->stack[sc->depth - 1];
            sc->p = s + 2;
            len = read_name(sc);
            if (len != e->tag_len || memcmp(sc->p, e->tag, len) != 0) return -1;
            sc->p += len;
            skip_space(sc);
            if (sc->p >= sc->end || *sc->p != '>') return -1;
            sc->p++;
            sc->depth--;
            if ((r = close_element(sc, e)) < 0) return r;
            continue;
        }
        {   /* a start tag */
            Element e;
            int empty;
            sc->p = s + 1;
            e.tag = sc->p;
            e.tag_len = read_name(sc);
            if (e.tag_len == 0) return -1;  /* '<!', '<?', a name lxml may read otherwise */
            sc->p += e.tag_len;
            if (sc->depth == 0 && seen_root) return -1;  /* a second root */
            if (sc->depth == MAX_DEPTH) return -1;
            if (read_attributes(sc, &empty) < 0) return -1;
            if ((r = open_element(sc, &e)) < 0) return r;
            seen_root = 1;
            if (empty) {
                if ((r = close_element(sc, &e)) < 0) return r;
            } else {
                sc->stack[sc->depth++] = e;
            }
        }
    }
    return seen_root && sc->depth == 0 ? 0 : -1;
}

/* The bytes are valid UTF-8 of XML characters (no U+FFFE, U+FFFF; the decoder refuses surrogates). */
static int valid_utf8(const char *s, Py_ssize_t n) {
    PyObject *str = PyUnicode_DecodeUTF8(s, n, "strict");
    Py_ssize_t i, len;
    int ok = 1;
    if (str == NULL) { PyErr_Clear(); return 0; }
    len = PyUnicode_GET_LENGTH(str);
    for (i = 0; i < len && ok; i++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(str, i);
        if (c == 0xFFFE || c == 0xFFFF) ok = 0;
    }
    Py_DECREF(str);
    return ok;
}

static PyObject *build_result(Scanner *sc) {
    double w, h, d;
    PyObject *file_name, *width, *height, *depth, *out;
    if (!sc->has_file_name || sc->file_name == NULL || !sc->has_size || PyList_GET_SIZE(sc->names) == 0)
        Py_RETURN_NONE;
    if (sc->dim[0] == NULL || sc->dim[1] == NULL || !finite_float(sc->dim[0], sc->dim_len[0], &w)
        || !finite_float(sc->dim[1], sc->dim_len[1], &h) || w <= 0 || h <= 0)
        Py_RETURN_NONE;
    file_name = stripped(sc->file_name, sc->file_name_len);
    if (file_name == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    if (PyUnicode_GET_LENGTH(file_name) == 0) { Py_DECREF(file_name); Py_RETURN_NONE; }
    /* int(round(w)): round() on a float rounds half to even, as nearbyint() does in the default mode */
    width = PyLong_FromDouble(nearbyint(w));
    height = PyLong_FromDouble(nearbyint(h));
    if (sc->dim[2] != NULL && finite_float(sc->dim[2], sc->dim_len[2], &d) && d > 0) {
        depth = PyLong_FromDouble(d);  /* int(d) truncates, as PyLong_FromDouble does */
    } else {
        depth = Py_None;
        Py_INCREF(depth);
    }
    if (width == NULL || height == NULL || depth == NULL) {
        Py_XDECREF(width); Py_XDECREF(height); Py_XDECREF(depth); Py_DECREF(file_name);
        return NULL;
    }
    out = PyTuple_Pack(8, file_name, width, height, depth, sc->names, sc->boxes, sc->flags, sc->attrs);
    Py_DECREF(file_name); Py_DECREF(width); Py_DECREF(height); Py_DECREF(depth);
    return out;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer buf;
    double lo, hi;
    Scanner scanner, *sc;
    PyObject *out = NULL;
    int r;
    if (!PyArg_ParseTuple(args, "y*dd:scan", &buf, &lo, &hi)) return NULL;
    if (buf.len == 0 || buf.len > MAX_BYTES || ((const char *)buf.buf)[0] != '<') {
        PyBuffer_Release(&buf);
        Py_RETURN_NONE;
    }
    sc = &scanner;
    memset(sc, 0, offsetof(Scanner, stack));
    sc->p = buf.buf;
    sc->end = sc->p + buf.len;
    sc->lo = lo;
    sc->hi = hi;
    sc->names = PyList_New(0);
    sc->boxes = PyList_New(0);
    sc->flags = PyList_New(0);
    sc->attrs = PyList_New(0);
    if (sc->names && sc->boxes && sc->flags && sc->attrs) {
        r = scan_document(sc);
        if (r == 0 && sc->non_ascii && !valid_utf8(buf.buf, buf.len)) r = -1;
        if (r == 0) {
            out = build_result(sc);
        } else if (r == -1) {
            out = Py_None;
            Py_INCREF(out);
        }
    }
    Py_XDECREF(sc->obj.attrs);
    Py_XDECREF(sc->names);
    Py_XDECREF(sc->boxes);
    Py_XDECREF(sc->flags);
    Py_XDECREF(sc->attrs);
    PyBuffer_Release(&buf);
    return out;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(data, lo, hi) -> (file_name, width, height, depth, names, boxes, flags, attrs) or None.\n\n"
     "The regular VOC document read without lxml; None for anything that needs the general reader."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_voc_scan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__voc_scan(void) {
    init_classes();
    return PyModule_Create(&module);
}

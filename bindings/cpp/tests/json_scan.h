/* A small JSON scanner for the tests only: it walks the golden-vector file
 * (spec/vectors/form3.json) to hand rows and expected strings to the ABI.
 * It checks nothing itself; every contract rule runs in the Rust engine. */
#ifndef FASTEN_TEST_JSON_SCAN_H
#define FASTEN_TEST_JSON_SCAN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *js_ws(const char *p) {
  while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
  return p;
}

/* The end of the string starting at p (p at the opening quote). */
static const char *js_string_end(const char *p) {
  p++;
  while (*p && *p != '"') {
    if (*p == '\\') p++;
    if (*p) p++;
  }
  return *p ? p + 1 : p;
}

/* The end of the value starting at p. */
static const char *js_value_end(const char *p) {
  p = js_ws(p);
  if (*p == '"') return js_string_end(p);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (*p) {
      if (*p == '"') { p = js_string_end(p); continue; }
      if (*p == '{' || *p == '[') depth++;
      if (*p == '}' || *p == ']') { depth--; if (depth == 0) return p + 1; }
      p++;
    }
    return p;
  }
  while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') p++;
  return p;
}

/* Iterates an object's members: start with *it = the '{'; returns 0 at the end. */
static int js_member(const char **it, const char **key, size_t *key_len, const char **val) {
  const char *p = js_ws(*it);
  if (*p == '{' || *p == ',') p = js_ws(p + 1);
  if (*p != '"') return 0;
  const char *end = js_string_end(p);
  *key = p + 1;
  *key_len = (size_t)(end - p - 2);
  p = js_ws(end);
  if (*p != ':') return 0;
  *val = js_ws(p + 1);
  *it = js_ws(js_value_end(*val));
  return 1;
}

/* Iterates an array's elements: start with *it = the '['. */
static int js_element(const char **it, const char **val) {
  const char *p = js_ws(*it);
  if (*p == '[' || *p == ',') p = js_ws(p + 1);
  if (*p == ']' || !*p) return 0;
  *val = p;
  *it = js_ws(js_value_end(p));
  return 1;
}

/* The value of member `name` of the object at obj, or NULL. */
static const char *js_get(const char *obj, const char *name) {
  const char *it = obj, *key, *val;
  size_t len;
  while (js_member(&it, &key, &len, &val))
    if (len == strlen(name) && memcmp(key, name, len) == 0) return val;
  return NULL;
}

static void js_utf8(char **o, unsigned long cp) {
  unsigned char *u = (unsigned char *)*o;
  if (cp < 0x80) { *u++ = (unsigned char)cp; }
  else if (cp < 0x800) { *u++ = (unsigned char)(0xC0 | (cp >> 6)); *u++ = (unsigned char)(0x80 | (cp & 0x3F)); }
  else if (cp < 0x10000) { *u++ = (unsigned char)(0xE0 | (cp >> 12)); *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); *u++ = (unsigned char)(0x80 | (cp & 0x3F)); }
  else { *u++ = (unsigned char)(0xF0 | (cp >> 18)); *u++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F)); *u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); *u++ = (unsigned char)(0x80 | (cp & 0x3F)); }
  *o = (char *)u;
}

static unsigned long js_hex4(const char *p) {
  char b[5];
  memcpy(b, p, 4);
  b[4] = 0;
  return strtoul(b, NULL, 16);
}

/* Decodes the JSON string at p into a malloc'd UTF-8 buffer (free()). */
static char *js_decode(const char *p) {
  const char *end = js_string_end(p);
  char *out = (char *)malloc((size_t)(end - p) + 1), *o = out;
  for (p++; p < end - 1; p++) {
    if (*p != '\\') { *o++ = *p; continue; }
    p++;
    switch (*p) {
      case 'n': *o++ = '\n'; break;
      case 't': *o++ = '\t'; break;
      case 'r': *o++ = '\r'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'u': {
        unsigned long cp = js_hex4(p + 1);
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
          unsigned long lo = js_hex4(p + 3);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          p += 6;
        }
        js_utf8(&o, cp);
        break;
      }
      default: *o++ = *p;
    }
  }
  *o = 0;
  return out;
}

/* A malloc'd copy of the raw value text at p. */
static char *js_raw(const char *p) {
  const char *end = js_value_end(p);
  char *out = (char *)malloc((size_t)(end - p) + 1);
  memcpy(out, p, (size_t)(end - p));
  out[end - p] = 0;
  return out;
}

/* A malloc'd copy of the object at obj without the members named in `drop`
 * (a NULL-terminated list). */
static char *js_without(const char *obj, const char *const *drop) {
  char *out = (char *)malloc(strlen(obj) + 3), *o = out;
  const char *it = obj, *key, *val;
  size_t len;
  int first = 1;
  *o++ = '{';
  while (js_member(&it, &key, &len, &val)) {
    int skip = 0;
    for (const char *const *d = drop; *d; d++)
      if (strlen(*d) == len && memcmp(*d, key, len) == 0) skip = 1;
    if (skip) continue;
    if (!first) *o++ = ',';
    first = 0;
    const char *vend = js_value_end(val);
    memcpy(o, key - 1, len + 2); o += len + 2;
    *o++ = ':';
    memcpy(o, val, (size_t)(vend - val)); o += vend - val;
  }
  *o++ = '}';
  *o = 0;
  return out;
}

static char *js_read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = (char *)malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = 0;
  fclose(f);
  return buf;
}

#endif

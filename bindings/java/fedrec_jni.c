/*
 * JNI glue of org.fedrec.FedrecClient over the public C API
 * (<fedrec/client.h> only). Each native method converts its arguments, makes
 * one fedrec call and converts the result; a failed call throws
 * org.fedrec.FedrecException(code, "strerror: errmsg"). The Java class
 * serializes close/forget against the other calls (a read-write lock), as
 * the C API requires; everything else may run concurrently.
 *
 * Secrets: the key and passphrase bytes are copied from the Java arrays into
 * a local buffer that is wiped before return (the Java copies are the app's).
 */
#include <jni.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fedrec/client.h>

#include "org_fedrec_FedrecClient.h"

static fedrec_client *H(jlong h)
{
    return (fedrec_client *)(intptr_t)h;
}

/* Throws FedrecException(e, message) unless one is already pending. */
static void throw_err(JNIEnv *env, fedrec_err e, const char *detail)
{
    if ((*env)->ExceptionCheck(env))
        return;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: %s", fedrec_strerror(e), detail);
    jclass cls = (*env)->FindClass(env, "org/fedrec/FedrecException");
    if (!cls)
        return;
    jmethodID ctor = (*env)->GetMethodID(env, cls, "<init>", "(ILjava/lang/String;)V");
    jstring jmsg = (*env)->NewStringUTF(env, msg);
    if (ctor && jmsg) {
        jobject ex = (*env)->NewObject(env, cls, ctor, (jint)e, jmsg);
        if (ex)
            (*env)->Throw(env, (jthrowable)ex);
    }
}

/* Returns 1 (and throws) when e is an error. */
static int failed(JNIEnv *env, fedrec_err e)
{
    if (e == FEDREC_OK)
        return 0;
    throw_err(env, e, fedrec_errmsg());
    return 1;
}

/* A Java string as modified UTF-8 (item codes and paths are ASCII), or NULL
 * for a null reference; release with put_str. */
static const char *get_str(JNIEnv *env, jstring s)
{
    return s ? (*env)->GetStringUTFChars(env, s, NULL) : NULL;
}

static void put_str(JNIEnv *env, jstring s, const char *c)
{
    if (s && c)
        (*env)->ReleaseStringUTFChars(env, s, c);
}

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

JNIEXPORT jstring JNICALL Java_org_fedrec_FedrecClient_version(JNIEnv *env, jclass cls)
{
    (void)cls;
    return (*env)->NewStringUTF(env, fedrec_version());
}

JNIEXPORT jint JNICALL Java_org_fedrec_FedrecClient_storeKeyBytes(JNIEnv *env, jclass cls)
{
    (void)env, (void)cls;
    return (jint)fedrec_client_store_key_bytes();
}

/* Copies the secret (exactly one of key, FEDREC_STORE_KEY_BYTES bytes, and
 * pass) into keybuf or, for a passphrase, a malloc'd buffer: *out and *n get
 * it. Returns 0, or 1 with an exception thrown. Release with put_secret. */
static int get_secret(JNIEnv *env, const char *what, jbyteArray key, jbyteArray pass,
                      uint8_t keybuf[FEDREC_STORE_KEY_BYTES], uint8_t **out, size_t *n)
{
    if (!key == !pass) {
        char m[128];
        snprintf(m, sizeof m, "%s: a store path and exactly one of key and passphrase are required",
                 what);
        throw_err(env, FEDREC_ERR_INVALID, m);
        return 1;
    }
    jbyteArray secret = key ? key : pass;
    jsize len = (*env)->GetArrayLength(env, secret);
    if (key && len != FEDREC_STORE_KEY_BYTES) {
        char m[96];
        snprintf(m, sizeof m, "%s: the key has %d bytes, %d expected", what, (int)len,
                 FEDREC_STORE_KEY_BYTES);
        throw_err(env, FEDREC_ERR_INVALID, m);
        return 1;
    }
    uint8_t *buf = key ? keybuf : malloc(len > 0 ? (size_t)len : 1);
    if (!buf) {
        char m[96];
        snprintf(m, sizeof m, "%s: passphrase copy", what);
        throw_err(env, FEDREC_ERR_NOMEM, m);
        return 1;
    }
    (*env)->GetByteArrayRegion(env, secret, 0, len, (jbyte *)buf);
    *out = buf;
    *n = (size_t)len;
    return 0;
}

static void put_secret(uint8_t *buf, size_t n, const uint8_t *keybuf)
{
    wipe(buf, n);
    if (buf != keybuf)
        free(buf);
}

JNIEXPORT jlong JNICALL Java_org_fedrec_FedrecClient_nativeOpen(
    JNIEnv *env, jclass cls, jstring path, jbyteArray key, jbyteArray pass, jstring url, jstring ca,
    jstring name, jint min_cohort, jint min_neighbors, jint min_threshold, jdouble min_fraction,
    jboolean must_exist)
{
    (void)cls;
    uint8_t keybuf[FEDREC_STORE_KEY_BYTES], *buf = NULL;
    size_t n = 0;
    if (!path) {
        throw_err(env, FEDREC_ERR_INVALID,
                  "open: a store path and exactly one of key and passphrase are required");
        return 0;
    }
    if (get_secret(env, "open", key, pass, keybuf, &buf, &n))
        return 0;
    const char *cpath = get_str(env, path), *curl = get_str(env, url), *cca = get_str(env, ca),
               *cname = get_str(env, name);
    fedrec_client *c = NULL;
    fedrec_err e = FEDREC_ERR_NOMEM;
    if (cpath && (!url || curl) && (!ca || cca) && (!name || cname)) {
        fedrec_client_options o;
        fedrec_client_options_init(&o);
        if (key) {
            o.key = buf;
        } else {
            o.passphrase = (const char *)buf;
            o.passphrase_len = n;
        }
        o.coordinator_url = curl;
        o.tls_ca_file = cca;
        o.tls_server_name = cname;
        o.min_cohort = min_cohort > 0 ? (uint32_t)min_cohort : 0;
        o.min_neighbors = min_neighbors > 0 ? (uint32_t)min_neighbors : 0;
        o.min_threshold = min_threshold > 0 ? (uint32_t)min_threshold : 0;
        o.min_threshold_fraction = min_fraction;
        o.must_exist = must_exist ? 1 : 0;
        e = fedrec_client_open_with(&c, cpath, &o);
    }
    put_secret(buf, n, keybuf);
    put_str(env, path, cpath);
    put_str(env, url, curl);
    put_str(env, ca, cca);
    put_str(env, name, cname);
    if (failed(env, e))
        return 0;
    return (jlong)(intptr_t)c;
}

JNIEXPORT jlong JNICALL Java_org_fedrec_FedrecClient_nativeRecover(JNIEnv *env, jclass cls,
                                                                   jstring path, jbyteArray key,
                                                                   jbyteArray pass)
{
    (void)cls;
    uint8_t keybuf[FEDREC_STORE_KEY_BYTES], *buf = NULL;
    size_t n = 0;
    if (!path) {
        throw_err(env, FEDREC_ERR_INVALID,
                  "recover: a store path and exactly one of key and passphrase are required");
        return 0;
    }
    if (get_secret(env, "recover", key, pass, keybuf, &buf, &n))
        return 0;
    const char *cpath = get_str(env, path);
    uint64_t lost = 0;
    fedrec_err e = FEDREC_ERR_NOMEM;
    if (cpath)
        e = key ? fedrec_client_recover(cpath, buf, &lost)
                : fedrec_client_recover_passphrase(cpath, (const char *)buf, n, &lost);
    put_secret(buf, n, keybuf);
    put_str(env, path, cpath);
    if (failed(env, e))
        return 0;
    return (jlong)lost;
}

JNIEXPORT void JNICALL Java_org_fedrec_FedrecClient_nativeClose(JNIEnv *env, jclass cls, jlong h)
{
    (void)env, (void)cls;
    fedrec_client_close(H(h));
}

JNIEXPORT void JNICALL Java_org_fedrec_FedrecClient_nativeRecord(JNIEnv *env, jclass cls, jlong h,
                                                                 jstring code, jlong time,
                                                                 jint quantity)
{
    (void)cls;
    if (!code || quantity < 1) {
        throw_err(env, FEDREC_ERR_INVALID, "record: an item code and a quantity >= 1 are required");
        return;
    }
    const char *c = get_str(env, code);
    if (!c)
        return; /* OutOfMemoryError pending */
    fedrec_err e = fedrec_client_record(H(h), c, (int64_t)time, (uint32_t)quantity);
    put_str(env, code, c);
    failed(env, e);
}

JNIEXPORT jlongArray JNICALL Java_org_fedrec_FedrecClient_nativeSync(JNIEnv *env, jclass cls,
                                                                     jlong h, jint deadline_ms)
{
    (void)cls;
    if (deadline_ms <= 0) {
        throw_err(env, FEDREC_ERR_INVALID, "sync: deadlineMs must be > 0");
        return NULL;
    }
    fedrec_sync_result r = {.struct_size = sizeof r};
    if (failed(env, fedrec_client_sync(H(h), (uint32_t)deadline_ms, &r)))
        return NULL;
    jlong v[5] = {(jlong)r.model_version, r.model_updated, r.took_part, (jlong)r.round_id,
                  (jlong)r.round_outcome};
    jlongArray out = (*env)->NewLongArray(env, 5);
    if (out)
        (*env)->SetLongArrayRegion(env, out, 0, 5, v);
    return out;
}

/* Object[]{a, b}, or NULL with an exception pending. */
static jobjectArray pair(JNIEnv *env, jobject a, jobject b)
{
    jclass obj = (*env)->FindClass(env, "java/lang/Object");
    jobjectArray out = obj ? (*env)->NewObjectArray(env, 2, obj, NULL) : NULL;
    if (out) {
        (*env)->SetObjectArrayElement(env, out, 0, a);
        (*env)->SetObjectArrayElement(env, out, 1, b);
    }
    return out;
}

JNIEXPORT jobjectArray JNICALL Java_org_fedrec_FedrecClient_nativeRecommend(JNIEnv *env, jclass cls,
                                                                            jlong h, jint k)
{
    (void)cls;
    if (k <= 0 || k > 1000000) {
        throw_err(env, FEDREC_ERR_INVALID, "recommend: k must be in 1..1000000");
        return NULL;
    }
    fedrec_recommendation *rec = malloc((size_t)k * sizeof *rec);
    if (!rec) {
        throw_err(env, FEDREC_ERR_NOMEM, "recommend: result buffer");
        return NULL;
    }
    uint32_t n = 0;
    jobjectArray out = NULL;
    if (!failed(env, fedrec_client_recommend(H(h), (uint32_t)k, rec, &n))) {
        jclass str = (*env)->FindClass(env, "java/lang/String");
        jobjectArray codes = str ? (*env)->NewObjectArray(env, (jsize)n, str, NULL) : NULL;
        jfloatArray scores = (*env)->NewFloatArray(env, (jsize)n);
        for (uint32_t i = 0; codes && scores && i < n; i++) {
            jstring s = (*env)->NewStringUTF(env, rec[i].item_code);
            if (!s)
                break;
            (*env)->SetObjectArrayElement(env, codes, (jsize)i, s);
            (*env)->DeleteLocalRef(env, s);
            jfloat f = rec[i].score;
            (*env)->SetFloatArrayRegion(env, scores, (jsize)i, 1, &f);
        }
        if (codes && scores && !(*env)->ExceptionCheck(env))
            out = pair(env, codes, scores);
    }
    free(rec);
    return out;
}

JNIEXPORT jobjectArray JNICALL Java_org_fedrec_FedrecClient_nativeLedger(JNIEnv *env, jclass cls,
                                                                         jlong h)
{
    (void)cls;
    size_t n = 0;
    if (failed(env, fedrec_client_ledger_count(H(h), &n)))
        return NULL;
    if (n > 0x7fffffff / 10) {
        throw_err(env, FEDREC_ERR_RANGE, "ledger: too many entries for a Java array");
        return NULL;
    }
    /* 10 numbers and 2 strings (what, reason) per entry */
    jclass str = (*env)->FindClass(env, "java/lang/String");
    jobjectArray whats = str ? (*env)->NewObjectArray(env, (jsize)(2 * n), str, NULL) : NULL;
    jlongArray v = (*env)->NewLongArray(env, (jsize)(10 * n));
    for (size_t i = 0; whats && v && i < n; i++) {
        fedrec_ledger_entry le = {.struct_size = sizeof le};
        if (failed(env, fedrec_client_ledger_get(H(h), i, &le)))
            return NULL;
        jlong row[10] = {(jlong)le.time_unix_ms, (jlong)le.round_id, (jlong)le.stage,
                         (jlong)le.bytes_sent,   (jlong)le.clipped,  (jlong)le.kind,
                         (jlong)le.refusal,      (jlong)le.cohort,   (jlong)le.neighbors,
                         (jlong)le.threshold};
        (*env)->SetLongArrayRegion(env, v, (jsize)(10 * i), 10, row);
        for (int k = 0; k < 2; k++) {
            jstring s = (*env)->NewStringUTF(env, k ? le.reason : le.what);
            if (!s)
                return NULL;
            (*env)->SetObjectArrayElement(env, whats, (jsize)(2 * i + (size_t)k), s);
            (*env)->DeleteLocalRef(env, s);
        }
    }
    if (!whats || !v || (*env)->ExceptionCheck(env))
        return NULL;
    return pair(env, v, whats);
}

JNIEXPORT void JNICALL Java_org_fedrec_FedrecClient_nativeSetParticipation(JNIEnv *env, jclass cls,
                                                                           jlong h,
                                                                           jboolean opted_in)
{
    (void)cls;
    failed(env, fedrec_client_set_participation(H(h), opted_in ? 1 : 0));
}

JNIEXPORT jboolean JNICALL Java_org_fedrec_FedrecClient_nativeGetParticipation(JNIEnv *env,
                                                                               jclass cls, jlong h)
{
    (void)cls;
    int in = 0;
    if (failed(env, fedrec_client_get_participation(H(h), &in)))
        return JNI_FALSE;
    return in ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT jobjectArray JNICALL Java_org_fedrec_FedrecClient_nativeInfo(JNIEnv *env, jclass cls,
                                                                       jlong h)
{
    (void)cls;
    fedrec_client_info in = {.struct_size = sizeof in};
    if (failed(env, fedrec_client_get_info(H(h), &in)))
        return NULL;
    jlong v[7] = {(jlong)in.client_id,     in.opted_in,           (jlong)in.purchases,
                  (jlong)in.model_version, (jlong)in.model_items, (jlong)in.model_factors,
                  (jlong)in.ledger_entries};
    jlongArray lv = (*env)->NewLongArray(env, 7);
    jbyteArray pk = (*env)->NewByteArray(env, (jsize)sizeof in.identity_pk);
    if (!lv || !pk)
        return NULL;
    (*env)->SetLongArrayRegion(env, lv, 0, 7, v);
    (*env)->SetByteArrayRegion(env, pk, 0, (jsize)sizeof in.identity_pk,
                               (const jbyte *)in.identity_pk);
    return pair(env, lv, pk);
}

JNIEXPORT void JNICALL Java_org_fedrec_FedrecClient_nativeForget(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    failed(env, fedrec_client_forget(H(h)));
}

/*
 * fedrec: federated recommender for online retail.
 *
 * This header is the common part of the public API: the export macro, the
 * error codes shared by every fedrec function, and the library version.
 * The client API that store apps use is in <fedrec/client.h>.
 *
 * Thread-safety: every function in this header may be called from any thread.
 */
#ifndef FEDREC_FEDREC_H
#define FEDREC_FEDREC_H

#ifdef __cplusplus
extern "C" {
#endif

/* The version of these headers (semantic versioning; equal to the CMake
 * project version, which CMakeLists.txt checks at configure time). Compare
 * with fedrec_version_number() to detect a header/library mismatch. */
#define FEDREC_VERSION_MAJOR 0
#define FEDREC_VERSION_MINOR 1
#define FEDREC_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, e.g. 100 for 0.1.0. */
#define FEDREC_VERSION_NUMBER                                                                      \
    (FEDREC_VERSION_MAJOR * 10000 + FEDREC_VERSION_MINOR * 100 + FEDREC_VERSION_PATCH)

/* FEDREC_API marks the exported symbols; the library is built with
 * -fvisibility=hidden, so nothing else is visible from libfedrec.so. */
#if defined(FEDREC_BUILDING) && defined(__GNUC__)
#define FEDREC_API __attribute__((visibility("default")))
#elif defined(__GNUC__)
#define FEDREC_API __attribute__((visibility("default")))
#else
#define FEDREC_API
#endif

/* Functions that can fail return a fedrec_err; ignoring it is a bug. */
#if defined(__GNUC__)
#define FEDREC_NODISCARD __attribute__((warn_unused_result))
#else
#define FEDREC_NODISCARD
#endif

/*
 * Error codes. Values are explicit and permanent: new codes are appended,
 * existing ones are never renumbered or reused.
 */
typedef enum fedrec_err {
    FEDREC_OK = 0,
    FEDREC_ERR_INVALID = 1,       /* an argument or parameter is invalid */
    FEDREC_ERR_NOMEM = 2,         /* out of memory */
    FEDREC_ERR_IO = 3,            /* a file or device operation failed */
    FEDREC_ERR_PARSE = 4,         /* a field could not be parsed */
    FEDREC_ERR_FORMAT = 5,        /* a file or message is malformed */
    FEDREC_ERR_NOT_FOUND = 6,     /* a named thing does not exist */
    FEDREC_ERR_RANGE = 7,         /* a value is out of range (e.g. overflow budget) */
    FEDREC_ERR_CRYPTO = 8,        /* a cryptographic operation failed */
    FEDREC_ERR_PROTOCOL = 9,      /* a message breaks the protocol */
    FEDREC_ERR_STAGE = 10,        /* a message for another stage */
    FEDREC_ERR_ROUND = 11,        /* a message for another round */
    FEDREC_ERR_ABORTED = 12,      /* the round was aborted (too few survivors) */
    FEDREC_ERR_TIMEOUT = 13,      /* a deadline passed */
    FEDREC_ERR_CLOSED = 14,       /* the object or connection is closed */
    FEDREC_ERR_TRANSPORT = 15,    /* the network transport failed */
    FEDREC_ERR_DB = 16,           /* the database failed */
    FEDREC_ERR_BADKEY = 17,       /* wrong key: authentication of stored data failed */
    FEDREC_ERR_CORRUPT = 18,      /* stored data is corrupted or truncated */
    FEDREC_ERR_OPTED_OUT = 19,    /* the shopper opted out of training */
    FEDREC_ERR_NOT_SELECTED = 20, /* the client is not in this round's cohort */
    FEDREC_ERR_NUMERIC = 21,      /* a numerical routine failed (e.g. not positive definite) */
    FEDREC_ERR_TOO_BIG = 22,      /* an input exceeds its size cap */
    FEDREC_ERR_DUPLICATE = 23,    /* a duplicate (id, message) */
    FEDREC_ERR_BUSY = 24,         /* try again later */
    FEDREC_ERR_UNSUPPORTED = 25,  /* not supported by this build or version */
    FEDREC_ERR_SIGNATURE = 26,    /* a signature did not verify */
    FEDREC_ERR_INTERNAL = 27,     /* an internal invariant failed */
    FEDREC_ERR_EMPTY = 28,        /* no data where some is required */
    FEDREC_ERR_LOST_EVENTS = 29,  /* committed events are missing from a store (log cut) */
    FEDREC_ERR_REFUSED = 30,      /* the client refused a round: below the app's floors, or
                                     the coordinator broke the protocol (the ledger says why) */
} fedrec_err;

/* A short, static description of an error code ("invalid argument").
 * Never returns NULL; unknown codes give "unknown error". */
FEDREC_API const char *fedrec_strerror(fedrec_err err);

/* The detailed message of the last error raised on the calling thread, naming
 * the input and what was wrong with it, e.g.
 * "data/x.csv:118: column Quantity: 'abc' is not an integer".
 * The string is thread-local and valid until the next fedrec call on the same
 * thread; it is "" when no error has been raised. Never returns NULL. */
FEDREC_API const char *fedrec_errmsg(void);

/* The library version, "MAJOR.MINOR.PATCH". Static storage; never NULL. */
FEDREC_API const char *fedrec_version(void);

/* The library's FEDREC_VERSION_NUMBER: the version of the binary actually
 * loaded, which may differ from the headers an app was compiled with.
 * Within one major version the ABI only grows (see <fedrec/client.h>). */
FEDREC_API int fedrec_version_number(void);

#ifdef __cplusplus
}
#endif
#endif /* FEDREC_FEDREC_H */

package org.fedrec;

import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * One shopper's fedrec client on this device: a thin binding of the C API in
 * fedrec/client.h (see that header for every contract; the method names
 * follow it). Kotlin on Android calls this same class:
 * {@code FedrecClient.open(path, key, url).use { it.record("P001", now, 1) }}.
 *
 * <p>The native library is libfedrec_jni (System.loadLibrary("fedrec_jni")),
 * which links libfedrec. Errors are {@link FedrecException}s carrying the C
 * error code and message. Thread-safety: every method may be called from
 * any thread, concurrently, like the C handle; {@link #close} and
 * {@link #forget} wait for calls in progress, and any call after them
 * throws FedrecException with code CLOSED.
 */
public final class FedrecClient implements AutoCloseable {
    static {
        System.loadLibrary("fedrec_jni");
    }

    private long handle;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();

    private FedrecClient(long handle) {
        this.handle = handle;
    }

    /** The library version, "MAJOR.MINOR.PATCH". */
    public static native String version();

    /** FEDREC_STORE_KEY_BYTES: the length of a raw store key. */
    public static native int storeKeyBytes();

    /**
     * fedrec_client_open_with: opens (or creates) the store directory with a
     * raw key of storeKeyBytes() bytes from the platform key store (Android
     * Keystore), syncing with coordinatorUrl (may be null). caFile and
     * serverName (may be null) are the TLS settings of a tls+tcp:// URL.
     */
    public static FedrecClient open(String storePath, byte[] key, String coordinatorUrl,
                                    String caFile, String serverName) throws FedrecException {
        return open(storePath, key, coordinatorUrl, caFile, serverName, null);
    }

    /**
     * The round floors the app sets (fedrec_client_options min_*): a round
     * whose cohort, neighbours or threshold is below them is refused before
     * anything secret is sent, and the refusal is in the ledger. 0 keeps the
     * library's default (cohort 10, neighbours 8, threshold 6 and 2/3 of
     * the neighbours); docs/client.md "Round floors".
     */
    public static final class Floors {
        public int minCohort;
        public int minNeighbors;
        public int minThreshold;
        public double minThresholdFraction;

        public Floors(int minCohort, int minNeighbors, int minThreshold,
                      double minThresholdFraction) {
            this.minCohort = minCohort;
            this.minNeighbors = minNeighbors;
            this.minThreshold = minThreshold;
            this.minThresholdFraction = minThresholdFraction;
        }
    }

    /** {@link #open(String, byte[], String, String, String)} with round floors (may be null). */
    public static FedrecClient open(String storePath, byte[] key, String coordinatorUrl,
                                    String caFile, String serverName, Floors floors)
        throws FedrecException {
        return openKey(storePath, key, coordinatorUrl, caFile, serverName, floors, false);
    }

    private static FedrecClient openKey(String storePath, byte[] key, String coordinatorUrl,
                                        String caFile, String serverName, Floors floors,
                                        boolean mustExist) throws FedrecException {
        Floors f = floors != null ? floors : new Floors(0, 0, 0, 0);
        return new FedrecClient(nativeOpen(storePath, key, null, coordinatorUrl, caFile,
                                           serverName, f.minCohort, f.minNeighbors,
                                           f.minThreshold, f.minThresholdFraction, mustExist));
    }

    /**
     * Like {@link #open(String, byte[], String, String, String, Floors)}, but
     * opens only a store that exists (fedrec_client_options must_exist = 1):
     * with no store at storePath (no directory, or no store file in it) it
     * throws {@link FedrecException#NOT_FOUND} and creates nothing, neither
     * directory nor file. For a screen or task that only reads, or that must
     * not make a new identity behind the shopper's back.
     */
    public static FedrecClient openExisting(String storePath, byte[] key, String coordinatorUrl,
                                            String caFile, String serverName, Floors floors)
        throws FedrecException {
        return openKey(storePath, key, coordinatorUrl, caFile, serverName, floors, true);
    }

    /** {@link #openExisting(String, byte[], String, String, String, Floors)} without TLS or floors. */
    public static FedrecClient openExisting(String storePath, byte[] key, String coordinatorUrl)
        throws FedrecException {
        return openExisting(storePath, key, coordinatorUrl, null, null, null);
    }

    /** {@link #open(String, byte[], String, String, String)} without TLS. */
    public static FedrecClient open(String storePath, byte[] key, String coordinatorUrl)
        throws FedrecException {
        return open(storePath, key, coordinatorUrl, null, null);
    }

    /** Like open, with a passphrase (UTF-8) stretched by Argon2id. */
    public static FedrecClient openPassphrase(String storePath, String passphrase,
                                              String coordinatorUrl) throws FedrecException {
        return openPass(storePath, passphrase, coordinatorUrl, false);
    }

    private static FedrecClient openPass(String storePath, String passphrase,
                                         String coordinatorUrl, boolean mustExist)
        throws FedrecException {
        return new FedrecClient(nativeOpen(storePath, null,
                                           passphrase.getBytes(
                                               java.nio.charset.StandardCharsets.UTF_8),
                                           coordinatorUrl, null, null, 0, 0, 0, 0, mustExist));
    }

    /** Like openPassphrase, opening only a store that exists (see openExisting). */
    public static FedrecClient openExistingPassphrase(String storePath, String passphrase,
                                                      String coordinatorUrl)
        throws FedrecException {
        return openPass(storePath, passphrase, coordinatorUrl, true);
    }

    /**
     * fedrec_client_recover: keeps what is left of a store whose open threw
     * FedrecException LOST_EVENTS (its log lost committed events): writes a
     * new snapshot of the remaining state and an empty log, so the next open
     * succeeds. Returns the number of committed events that were missing (0:
     * nothing was, nothing written). The store must not be open.
     */
    public static long recover(String storePath, byte[] key) throws FedrecException {
        return nativeRecover(storePath, key, null);
    }

    /** {@link #recover(String, byte[])} for a store protected by a passphrase. */
    public static long recoverPassphrase(String storePath, String passphrase)
        throws FedrecException {
        return nativeRecover(storePath, null,
                             passphrase.getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }

    /** A purchase: quantity units of itemCode at timeUnix (s since 1970 UTC). */
    public void record(String itemCode, long timeUnix, int quantity) throws FedrecException {
        lock.readLock().lock();
        try {
            nativeRecord(live(), itemCode, timeUnix, quantity);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** What fedrec_client_sync reports. */
    public static final class SyncResult {
        public final long modelVersion;
        public final boolean modelUpdated;
        public final boolean tookPart;
        public final long roundId;
        /** 0 when the round completed, else a FedrecException code (OPTED_OUT, ...). */
        public final int roundOutcome;

        SyncResult(long[] v) {
            modelVersion = v[0];
            modelUpdated = v[1] != 0;
            tookPart = v[2] != 0;
            roundId = v[3];
            roundOutcome = (int) v[4];
        }
    }

    /** fedrec_client_sync: blocks up to deadlineMs; call it off the UI thread. */
    public SyncResult sync(int deadlineMs) throws FedrecException {
        lock.readLock().lock();
        try {
            return new SyncResult(nativeSync(live(), deadlineMs));
        } finally {
            lock.readLock().unlock();
        }
    }

    /** One recommended item. */
    public static final class Recommendation {
        public final String itemCode;
        public final float score;

        Recommendation(String itemCode, float score) {
            this.itemCode = itemCode;
            this.score = score;
        }
    }

    /** The top k items for this shopper, best first, never one bought. */
    public Recommendation[] recommend(int k) throws FedrecException {
        lock.readLock().lock();
        try {
            Object[] r = nativeRecommend(live(), k);
            String[] codes = (String[]) r[0];
            float[] scores = (float[]) r[1];
            Recommendation[] out = new Recommendation[codes.length];
            for (int i = 0; i < codes.length; i++)
                out[i] = new Recommendation(codes[i], scores[i]);
            return out;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** One upload, or one refused round, as the shopper may inspect it. */
    public static final class LedgerEntry {
        public final long timeUnixMs;
        public final long roundId;
        public final int stage;
        public final long bytesSent;
        public final int clipped;
        public final String what;
        /** A refused round (what: the message withheld; reason: why). */
        public final boolean refused;
        /** fedrec_refusal: 1 below_floors, 2 roster_invalid, ... 5 stale_round ... (0: an upload). */
        public final int refusal;
        public final int cohort, neighbors, threshold;
        public final String reason;

        LedgerEntry(long[] v, int i, String what, String reason) {
            timeUnixMs = v[10 * i];
            roundId = v[10 * i + 1];
            stage = (int) v[10 * i + 2];
            bytesSent = v[10 * i + 3];
            clipped = (int) v[10 * i + 4];
            refused = v[10 * i + 5] == 1;
            refusal = (int) v[10 * i + 6];
            cohort = (int) v[10 * i + 7];
            neighbors = (int) v[10 * i + 8];
            threshold = (int) v[10 * i + 9];
            this.what = what;
            this.reason = reason;
        }
    }

    /** Every upload since the store was made, oldest first. */
    public LedgerEntry[] ledger() throws FedrecException {
        lock.readLock().lock();
        try {
            Object[] r = nativeLedger(live());
            long[] v = (long[]) r[0];
            String[] what = (String[]) r[1];
            LedgerEntry[] out = new LedgerEntry[what.length / 2];
            for (int i = 0; i < out.length; i++)
                out[i] = new LedgerEntry(v, i, what[2 * i], what[2 * i + 1]);
            return out;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Consent: true takes part in training (the default), false opts out. */
    public void setParticipation(boolean optedIn) throws FedrecException {
        lock.readLock().lock();
        try {
            nativeSetParticipation(live(), optedIn);
        } finally {
            lock.readLock().unlock();
        }
    }

    public boolean participation() throws FedrecException {
        lock.readLock().lock();
        try {
            return nativeGetParticipation(live());
        } finally {
            lock.readLock().unlock();
        }
    }

    /** fedrec_client_get_info. */
    public static final class Info {
        public final long clientId;
        public final byte[] identityPk;
        public final boolean optedIn;
        public final long purchases;
        public final long modelVersion;
        public final int modelItems;
        public final int modelFactors;
        public final long ledgerEntries;

        Info(long[] v, byte[] pk) {
            clientId = v[0];
            optedIn = v[1] != 0;
            purchases = v[2];
            modelVersion = v[3];
            modelItems = (int) v[4];
            modelFactors = (int) v[5];
            ledgerEntries = v[6];
            identityPk = pk;
        }
    }

    public Info info() throws FedrecException {
        lock.readLock().lock();
        try {
            Object[] r = nativeInfo(live());
            return new Info((long[]) r[0], (byte[]) r[1]);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Erases every store file and closes the client (also on error). */
    public void forget() throws FedrecException {
        lock.writeLock().lock();
        try {
            long h = live();
            handle = 0;
            nativeForget(h);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Closes the client; a no-op when already closed. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (handle != 0)
                nativeClose(handle);
            handle = 0;
        } finally {
            lock.writeLock().unlock();
        }
    }

    private long live() throws FedrecException {
        if (handle == 0)
            throw new FedrecException(FedrecException.CLOSED, "fedrec client is closed");
        return handle;
    }

    private static native long nativeOpen(String storePath, byte[] key, byte[] passphrase,
                                          String url, String caFile, String serverName,
                                          int minCohort, int minNeighbors, int minThreshold,
                                          double minThresholdFraction, boolean mustExist)
        throws FedrecException;
    private static native long nativeRecover(String storePath, byte[] key, byte[] passphrase)
        throws FedrecException;
    private static native void nativeClose(long h);
    private static native void nativeRecord(long h, String code, long time, int quantity)
        throws FedrecException;
    private static native long[] nativeSync(long h, int deadlineMs) throws FedrecException;
    private static native Object[] nativeRecommend(long h, int k) throws FedrecException;
    private static native Object[] nativeLedger(long h) throws FedrecException;
    private static native void nativeSetParticipation(long h, boolean optedIn)
        throws FedrecException;
    private static native boolean nativeGetParticipation(long h) throws FedrecException;
    private static native Object[] nativeInfo(long h) throws FedrecException;
    private static native void nativeForget(long h) throws FedrecException;
}

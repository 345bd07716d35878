package org.fedrec;

import java.io.File;
import java.security.SecureRandom;
import java.util.HashSet;
import java.util.Set;

/**
 * The Java binding against a real fedrec-coordinator on loopback (started by
 * tests/java_test.sh with --cohort 3 --min-cohort 3): three shoppers open,
 * record, sync in parallel and take part in one round; one recommends,
 * reads its ledger, opts out, syncs again without uploading; all forget.
 * Usage: FedrecClientTest URL DIR VERSION. Exits non-zero on any failure.
 */
public final class FedrecClientTest {
    private static void check(boolean ok, String what) {
        if (!ok)
            throw new AssertionError(what);
    }


    interface Call {
        void run() throws FedrecException;
    }

    private static FedrecException expect(int code, Call c) {
        try {
            c.run();
        } catch (FedrecException e) {
            check(e.code == code, "expected code " + code + ", got " + e.code + ": " + e.getMessage());
            return e;
        }
        throw new AssertionError("expected FedrecException " + code);
    }

    public static void main(String[] args) throws Exception {
        String url = args[0], dir = args[1], version = args[2];
        check(FedrecClient.version().equals(version), "version " + FedrecClient.version());
        check(FedrecClient.storeKeyBytes() == 32, "storeKeyBytes");
        SecureRandom rnd = new SecureRandom();
        String[][] baskets = {{"P001", "P004", "P007"}, {"P003", "P006", "P009"},
                              {"P005", "P008", "P011"}};
        FedrecClient[] c = new FedrecClient[3];
        String[] stores = new String[3];

        FedrecException bad = expect(FedrecException.INVALID,
                                     () -> FedrecClient.open(dir + "/bad", new byte[5], url));
        check(bad.getMessage().contains("5 bytes"), bad.getMessage());

        // openExisting: no store, NOT_FOUND, nothing created (neither the
        // directory nor, in an empty directory, a store file); an existing
        // store opens with its purchases
        byte[] ekey = new byte[FedrecClient.storeKeyBytes()];
        rnd.nextBytes(ekey);
        String estore = dir + "/existing";
        FedrecException nf = expect(FedrecException.NOT_FOUND,
                                    () -> FedrecClient.openExisting(estore, ekey, null));
        check(!new File(estore).exists(), "openExisting created " + estore);
        check(new File(estore).mkdir(), "mkdir " + estore);
        expect(FedrecException.NOT_FOUND, () -> FedrecClient.openExistingPassphrase(
                                              estore, "correct horse", null));
        String[] left = new File(estore).list();
        check(left != null && left.length == 0, "openExisting wrote into " + estore);
        try (FedrecClient ec = FedrecClient.open(estore, ekey, null)) {
            ec.record("P002", 1700000000L, 1);
        }
        try (FedrecClient ec = FedrecClient.openExisting(estore, ekey, null)) {
            check(ec.info().purchases == 1, "openExisting opened the store");
            ec.forget();
        }

        for (int i = 0; i < 3; i++) {
            byte[] key = new byte[FedrecClient.storeKeyBytes()];
            rnd.nextBytes(key);
            stores[i] = dir + "/shopper-" + i;
            /* a test cohort of 3: the app lowers its round floors to it */
            c[i] = FedrecClient.open(stores[i], key, url, null, null,
                                     new FedrecClient.Floors(3, 2, 2, 0.5));
            for (int j = 0; j < 3; j++)
                c[i].record(baskets[i][j], 1700000000L + j, j == 0 ? 2 : 1);
            check(c[i].info().purchases == 3, "purchases recorded");
        }
        final FedrecClient c0 = c[0];
        FedrecException e = expect(FedrecException.EMPTY, () -> c0.recommend(5));
        check(e.getMessage().contains("no model"), e.getMessage());
        expect(FedrecException.INVALID, () -> c0.record("bad,code", 1, 1));

        // Sync all three at once: the coordinator's cohort of 3 fills.
        FedrecClient.SyncResult[] res = new FedrecClient.SyncResult[3];
        Exception[] err = new Exception[3];
        Thread[] t = new Thread[3];
        for (int i = 0; i < 3; i++) {
            final int k = i;
            t[i] = new Thread(() -> {
                try {
                    res[k] = c[k].sync(60000);
                } catch (Exception ex) {
                    err[k] = ex;
                }
            });
            t[i].start();
        }
        for (Thread th : t)
            th.join();
        for (int i = 0; i < 3; i++) {
            if (err[i] != null)
                throw new AssertionError("sync " + i + ": " + err[i].getMessage());
            check(res[i].modelVersion >= 1, "model version");
            check(res[i].tookPart && res[i].roundOutcome == 0 && res[i].roundId >= 1,
                  "shopper " + i + " took part in a completed round");
        }

        FedrecClient.Recommendation[] rec = c0.recommend(5);
        check(rec.length == 5, "5 recommendations");
        Set<String> bought = new HashSet<>();
        for (String s : baskets[0])
            bought.add(s);
        for (FedrecClient.Recommendation r : rec)
            check(!bought.contains(r.itemCode) && r.itemCode.startsWith("P0"), "recommended " + r.itemCode);
        for (int i = 1; i < rec.length; i++)
            check(rec[i - 1].score >= rec[i].score, "best first");

        FedrecClient.LedgerEntry[] led = c0.ledger();
        // seven uploads: stage 0 (advert, graph seed contribution), 1 (shares,
        // the empty complaints), 2, 3 (consistency tags, unmask shares)
        int[] stages = {0, 0, 1, 1, 2, 3, 3};
        check(led.length == 7, "7 uploads in the four SecAgg stages: " + led.length);
        for (int i = 0; i < 7; i++)
            check(led[i].stage == stages[i] && led[i].bytesSent > 0
                      && led[i].roundId == res[0].roundId
                      && !led[i].refused && led[i].refusal == 0 && led[i].reason.isEmpty(),
                  "ledger entry " + i + ": " + led[i].what);
        check(led[4].what.equals("masked update"), led[4].what);
        FedrecClient.Info info = c0.info();
        check(info.ledgerEntries == 7 && info.optedIn && info.identityPk.length == 32, "info");
        check(info.modelVersion >= 1 && info.modelFactors == 4 && info.modelItems == 12, "model");

        // Opt out: the sync still works, nothing is uploaded.
        c0.setParticipation(false);
        check(!c0.participation(), "opted out");
        FedrecClient.SyncResult out = c0.sync(30000);
        check(out.roundOutcome == FedrecException.OPTED_OUT && !out.tookPart, "opted-out sync");
        check(c0.ledger().length == 7, "no upload after opting out");

        // A cut log: open names the missing events (LOST_EVENTS); recover
        // keeps the rest, and the store opens again with exactly those.
        byte[] lkey = new byte[FedrecClient.storeKeyBytes()];
        rnd.nextBytes(lkey);
        String lstore = dir + "/cut";
        try (FedrecClient lc = FedrecClient.open(lstore, lkey, null)) {
            for (int j = 0; j < 10; j++)
                lc.record("P00" + j, 1700000000L + j, 1);
        }
        File log = new File(lstore, "log");
        long full = log.length();
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(log, "rw")) {
            f.setLength(104 + (full - 104) / 2); // 104: the log's header
        }
        FedrecException lost = expect(FedrecException.LOST_EVENTS,
                                      () -> FedrecClient.open(lstore, lkey, null));
        java.util.regex.Matcher m = java.util.regex.Pattern
            .compile("(\\d+) committed events are missing").matcher(lost.getMessage());
        check(m.find(), lost.getMessage());
        long missing = Long.parseLong(m.group(1));
        check(missing >= 5 && missing < 10, "missing " + missing + " of 10");
        byte[] wrong = lkey.clone();
        wrong[0] ^= 1;
        expect(FedrecException.BADKEY, () -> FedrecClient.recover(lstore, wrong));
        check(FedrecClient.recover(lstore, lkey) == missing, "recover reports the loss");
        check(FedrecClient.recover(lstore, lkey) == 0, "a second recover has nothing to do");
        try (FedrecClient lc = FedrecClient.open(lstore, lkey, null)) {
            check(lc.info().purchases == 10 - missing, "the events before the cut are kept");
            lc.forget();
        }

        // Forget: no file left; the object is closed.
        for (int i = 0; i < 3; i++) {
            c[i].forget();
            check(!new File(stores[i]).exists(), "store " + i + " removed");
        }
        expect(FedrecException.CLOSED, () -> c0.info());
        c0.close(); // harmless after forget
        System.out.println("java binding " + FedrecClient.version() + ": ok (round " + res[0].roundId
                           + ", " + led.length + " uploads, top item " + rec[0].itemCode + ")");
    }
}

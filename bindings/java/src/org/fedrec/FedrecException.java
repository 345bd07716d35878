package org.fedrec;

/**
 * A failed fedrec call: {@link #code} is the C library's fedrec_err value
 * (see fedrec/fedrec.h: 1 invalid argument, 3 I/O, 6 not found, 13 timeout, 15 transport,
 * 17 wrong key, 18 corrupt store, 29 committed events missing from the
 * store's log, ...), the message is fedrec_strerror()
 * followed by fedrec_errmsg(), which names the input that was wrong.
 */
public final class FedrecException extends Exception {
    private static final long serialVersionUID = 1L;

    public static final int INVALID = 1;
    public static final int IO = 3;
    /** No store at the path, opened with FedrecClient.openExisting. */
    public static final int NOT_FOUND = 6;
    public static final int RANGE = 7;
    public static final int TIMEOUT = 13;
    public static final int CLOSED = 14;
    public static final int TRANSPORT = 15;
    public static final int BADKEY = 17;
    public static final int CORRUPT = 18;
    public static final int OPTED_OUT = 19;
    public static final int NOT_SELECTED = 20;
    public static final int EMPTY = 28;
    /**
     * The store's log lost committed events (it was cut): the message says
     * how many. Restore the file, or keep what is left with
     * {@link FedrecClient#recover}.
     */
    public static final int LOST_EVENTS = 29;

    /** The fedrec_err code. */
    public final int code;

    public FedrecException(int code, String message) {
        super(message);
        this.code = code;
    }
}

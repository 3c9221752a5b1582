package dev.handshaker.client;

import java.util.Map;

/** TLS alert descriptions (IANA TLS Alert Registry) by number, for messages and callers. */
public final class Alert {
  public static final int CLOSE_NOTIFY = 0;
  public static final int UNEXPECTED_MESSAGE = 10;
  public static final int BAD_RECORD_MAC = 20;
  public static final int RECORD_OVERFLOW = 22;
  public static final int HANDSHAKE_FAILURE = 40;
  public static final int BAD_CERTIFICATE = 42;
  public static final int CERTIFICATE_EXPIRED = 45;
  public static final int CERTIFICATE_UNKNOWN = 46;
  public static final int ILLEGAL_PARAMETER = 47;
  public static final int UNKNOWN_CA = 48;
  public static final int DECODE_ERROR = 50;
  public static final int DECRYPT_ERROR = 51;
  public static final int PROTOCOL_VERSION = 70;
  public static final int INTERNAL_ERROR = 80;
  public static final int USER_CANCELED = 90;
  public static final int CERTIFICATE_REQUIRED = 116;
  public static final int NO_APPLICATION_PROTOCOL = 120;

  private static final Map<Integer, String> NAMES =
      Map.ofEntries(
          Map.entry(0, "close_notify"),
          Map.entry(10, "unexpected_message"),
          Map.entry(20, "bad_record_mac"),
          Map.entry(22, "record_overflow"),
          Map.entry(40, "handshake_failure"),
          Map.entry(42, "bad_certificate"),
          Map.entry(43, "unsupported_certificate"),
          Map.entry(44, "certificate_revoked"),
          Map.entry(45, "certificate_expired"),
          Map.entry(46, "certificate_unknown"),
          Map.entry(47, "illegal_parameter"),
          Map.entry(48, "unknown_ca"),
          Map.entry(49, "access_denied"),
          Map.entry(50, "decode_error"),
          Map.entry(51, "decrypt_error"),
          Map.entry(70, "protocol_version"),
          Map.entry(71, "insufficient_security"),
          Map.entry(80, "internal_error"),
          Map.entry(86, "inappropriate_fallback"),
          Map.entry(90, "user_canceled"),
          Map.entry(109, "missing_extension"),
          Map.entry(110, "unsupported_extension"),
          Map.entry(112, "unrecognized_name"),
          Map.entry(113, "bad_certificate_status_response"),
          Map.entry(115, "unknown_psk_identity"),
          Map.entry(116, "certificate_required"),
          Map.entry(120, "no_application_protocol"));

  private Alert() {}

  /** The registry name of an alert description, e.g. "unknown_ca" for 48. */
  public static String name(int description) {
    return NAMES.getOrDefault(description, "alert_" + description);
  }

  static String describe(int alert, String reason, boolean sentByPeer) {
    String who = sentByPeer ? "received from the peer" : "sent to the peer";
    String text = name(alert) + " (" + alert + ") " + who;
    return reason == null || reason.isEmpty() ? text : text + ": " + reason;
  }
}

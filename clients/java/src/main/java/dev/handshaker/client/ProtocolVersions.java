package dev.handshaker.client;

/** The protocol versions a config may bound, by their JSSE names. */
final class ProtocolVersions {
  static final int TLS1_2 = 0x0303;
  static final int TLS1_3 = 0x0304;

  private ProtocolVersions() {}

  /** "TLSv1.2" or "TLSv1.3" as the IANA code point the options take; null is 0, the default. */
  static int codePoint(String protocol) {
    if (protocol == null) {
      return 0;
    }
    return switch (protocol) {
      case "TLSv1.2" -> TLS1_2;
      case "TLSv1.3" -> TLS1_3;
      default -> throw new IllegalArgumentException(
          "protocol " + protocol + ": only TLSv1.2 and TLSv1.3 are supported");
    };
  }

  /** Refuses a minimum above the maximum (0 is unset). */
  static void check(int min, int max) {
    if (min != 0 && max != 0 && min > max) {
      throw new IllegalArgumentException("the minimum protocol version is above the maximum");
    }
  }
}

package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;

/**
 * The RFC 5705 exporter on the TLS 1.2 PRF. The expected bytes come from the Go client's exporter,
 * which its tests check against crypto/tls, and agree with a plain HMAC computation of P_hash.
 */
class PrfTest {
  private static final HexFormat HEX = HexFormat.of();
  private static final byte[] MASTER_SECRET = filled(48, 0x01);
  private static final byte[] CLIENT_RANDOM = filled(32, 0xaa);
  private static final byte[] SERVER_RANDOM = filled(32, 0xbb);
  private static final byte[] LABEL = "EXPORTER-test".getBytes(StandardCharsets.US_ASCII);

  private static byte[] filled(int length, int value) {
    byte[] out = new byte[length];
    Arrays.fill(out, (byte) value);
    return out;
  }

  private static byte[] export(CipherSuite suite, byte[] label, byte[] context) throws Exception {
    return Prf.exporter(suite, MASTER_SECRET, CLIENT_RANDOM, SERVER_RANDOM, label, context, 40);
  }

  @Test
  void pSha256WithAndWithoutAContext() throws Exception {
    CipherSuite suite = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256;
    assertArrayEquals(
        HEX.parseHex("fcdfe956ee92a77bdf7a681fd8b3811dc8ff3481d8c8d053aec35714c6b7309e15990063863d122b"),
        export(suite, LABEL, "ctx".getBytes(StandardCharsets.US_ASCII)));
    assertArrayEquals(
        HEX.parseHex("e17e35ed573a0bb20c33c5ca62cc2b44fcc5e7afd96c8ada1f889cef64da7875fbf4a1f970c2d307"),
        export(suite, LABEL, null));
  }

  @Test
  void pSha384ForTheSha384Suites() throws Exception {
    CipherSuite suite = CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384;
    assertArrayEquals(
        HEX.parseHex("b5e3d3704b289631c013e4374c68da06e0f6718d0a1564a02afaee940f02a0290260abea02181fd6"),
        export(suite, LABEL, "ctx".getBytes(StandardCharsets.US_ASCII)));
    assertArrayEquals(
        HEX.parseHex("1cd39e720d0fd3ace0f0f61b05fed8bc4dffd66b7649721c6623db5ec7e44c1537932dbca78296f7"),
        export(suite, LABEL, null));
  }

  @Test
  void reservedLabelsAreRefused() {
    byte[] label = "key expansion".getBytes(StandardCharsets.US_ASCII);
    assertThrows(
        IllegalArgumentException.class,
        () -> export(CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, label, null));
  }
}

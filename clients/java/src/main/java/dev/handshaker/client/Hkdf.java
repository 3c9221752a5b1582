package dev.handshaker.client;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** HKDF-Expand-Label and Derive-Secret (RFC 8446 section 7.1) for KeyUpdate and exporters. */
final class Hkdf {
  private Hkdf() {}

  /**
   * <pre>
   * HKDF-Expand-Label(Secret, Label, Context, Length) =
   *      HKDF-Expand(Secret, HkdfLabel, Length)
   *
   * struct {
   *     uint16 length = Length;
   *     opaque label<7..255> = "tls13 " + Label;
   *     opaque context<0..255> = Context;
   * } HkdfLabel;
   * </pre>
   */
  static byte[] expandLabel(
      CipherSuite suite, byte[] secret, byte[] label, byte[] context, int length)
      throws GeneralSecurityException {
    byte[] prefix = "tls13 ".getBytes(StandardCharsets.US_ASCII);
    int labelLength = prefix.length + label.length;
    if (labelLength > 255 || context.length > 255 || length > 0xffff) {
      throw new IllegalArgumentException("HkdfLabel field too long");
    }
    ByteArrayOutputStream info = new ByteArrayOutputStream();
    info.write(length >>> 8);
    info.write(length);
    info.write(labelLength);
    info.writeBytes(prefix);
    info.writeBytes(label);
    info.write(context.length);
    info.writeBytes(context);
    return expand(suite, secret, info.toByteArray(), length);
  }

  static byte[] expandLabel(CipherSuite suite, byte[] secret, String label, int length)
      throws GeneralSecurityException {
    return expandLabel(suite, secret, label.getBytes(StandardCharsets.US_ASCII), new byte[0], length);
  }

  /** RFC 5869 section 2.3: T(i) = HMAC-Hash(PRK, T(i-1) | info | i). */
  static byte[] expand(CipherSuite suite, byte[] prk, byte[] info, int length)
      throws GeneralSecurityException {
    if (length > 255 * suite.hashLength()) {
      throw new IllegalArgumentException("HKDF-Expand length too large for the hash");
    }
    Mac mac = Mac.getInstance(suite.hmacAlgorithm());
    mac.init(new SecretKeySpec(prk, suite.hmacAlgorithm()));
    byte[] out = new byte[length];
    byte[] block = new byte[0];
    int filled = 0;
    for (int counter = 1; filled < length; counter++) {
      mac.update(block);
      mac.update(info);
      mac.update((byte) counter);
      block = mac.doFinal();
      int take = Math.min(block.length, length - filled);
      System.arraycopy(block, 0, out, filled, take);
      filled += take;
    }
    return out;
  }

  static byte[] hash(CipherSuite suite, byte[] data) throws GeneralSecurityException {
    return MessageDigest.getInstance(suite.digestAlgorithm()).digest(data);
  }

  /**
   * RFC 8446 section 7.5:
   *
   * <pre>
   * TLS-Exporter(label, context_value, key_length) =
   *     HKDF-Expand-Label(Derive-Secret(Secret, label, ""),
   *                       "exporter", Hash(context_value), key_length)
   * </pre>
   */
  static byte[] exporter(
      CipherSuite suite, byte[] exporterMasterSecret, byte[] label, byte[] context, int length)
      throws GeneralSecurityException {
    byte[] derived =
        expandLabel(suite, exporterMasterSecret, label, hash(suite, new byte[0]), suite.hashLength());
    return expandLabel(
        suite,
        derived,
        "exporter".getBytes(StandardCharsets.US_ASCII),
        hash(suite, context),
        length);
  }
}

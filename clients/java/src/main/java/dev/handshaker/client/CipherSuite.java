package dev.handshaker.client;

import java.security.GeneralSecurityException;
import java.security.spec.AlgorithmParameterSpec;
import java.util.Arrays;
import java.util.List;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.IvParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/** The TLS 1.3 cipher suites (RFC 8446 appendix B.4) and how javax.crypto spells them. */
public enum CipherSuite {
  TLS_AES_128_GCM_SHA256(0x1301, 16, "HmacSHA256", "SHA-256", 32, "AES/GCM/NoPadding", "AES"),
  TLS_AES_256_GCM_SHA384(0x1302, 32, "HmacSHA384", "SHA-384", 48, "AES/GCM/NoPadding", "AES"),
  TLS_CHACHA20_POLY1305_SHA256(
      0x1303, 32, "HmacSHA256", "SHA-256", 32, "ChaCha20-Poly1305", "ChaCha20");

  /** Every TLS 1.3 AEAD has a 16-byte tag and, per RFC 8446 section 5.3, a 12-byte nonce. */
  static final int TAG_LENGTH = 16;

  static final int IV_LENGTH = 12;

  private final int codePoint;
  private final int keyLength;
  private final String hmac;
  private final String digest;
  private final int hashLength;
  private final String transformation;
  private final String keyAlgorithm;

  CipherSuite(
      int codePoint,
      int keyLength,
      String hmac,
      String digest,
      int hashLength,
      String transformation,
      String keyAlgorithm) {
    this.codePoint = codePoint;
    this.keyLength = keyLength;
    this.hmac = hmac;
    this.digest = digest;
    this.hashLength = hashLength;
    this.transformation = transformation;
    this.keyAlgorithm = keyAlgorithm;
  }

  /** The IANA code point. */
  public int codePoint() {
    return codePoint;
  }

  /** The code points of {@code suites}, in order: the form the service's options take. */
  static List<Integer> codePoints(CipherSuite... suites) {
    return Arrays.stream(suites).map(CipherSuite::codePoint).toList();
  }

  /** The suite with this IANA code point. */
  public static CipherSuite fromCodePoint(int codePoint) {
    for (CipherSuite suite : values()) {
      if (suite.codePoint == codePoint) {
        return suite;
      }
    }
    throw new IllegalArgumentException(
        String.format("unsupported TLS 1.3 cipher suite 0x%04x", codePoint));
  }

  int keyLength() {
    return keyLength;
  }

  String hmacAlgorithm() {
    return hmac;
  }

  String digestAlgorithm() {
    return digest;
  }

  int hashLength() {
    return hashLength;
  }

  Cipher newCipher() throws GeneralSecurityException {
    return Cipher.getInstance(transformation);
  }

  SecretKeySpec secretKey(byte[] key) {
    return new SecretKeySpec(key, keyAlgorithm);
  }

  AlgorithmParameterSpec nonceSpec(byte[] nonce) {
    return this == TLS_CHACHA20_POLY1305_SHA256
        ? new IvParameterSpec(nonce)
        : new GCMParameterSpec(TAG_LENGTH * 8, nonce);
  }
}

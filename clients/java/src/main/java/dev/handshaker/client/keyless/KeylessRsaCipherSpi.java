package dev.handshaker.client.keyless;

import java.io.ByteArrayOutputStream;
import java.security.AlgorithmParameters;
import java.security.InvalidAlgorithmParameterException;
import java.security.InvalidKeyException;
import java.security.Key;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.security.spec.AlgorithmParameterSpec;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.CipherSpi;
import javax.crypto.IllegalBlockSizeException;
import javax.crypto.NoSuchPaddingException;
import javax.crypto.ShortBufferException;
import javax.crypto.spec.SecretKeySpec;

/**
 * RSA/ECB/PKCS1Padding decryption with a {@link KeylessPrivateKey} through KeyOperations.Decrypt,
 * for TLS 1.2's RSA key exchange.
 *
 * <p>How SunJSSE (Java 11 and later; tested on 17) decrypts the premaster secret: {@code Cipher.init(UNWRAP_MODE,
 * key, TlsRsaPremasterSecretParameterSpec)} first; since the provider chosen is not SunJCE or
 * SunPKCS11, it then takes a fresh Cipher, {@code init(DECRYPT_MODE, key)} and {@code
 * doFinal(encrypted)}, and checks the 48 bytes' version itself (replacing them with random bytes
 * when they are wrong). Both modes work here; the plaintext length is 48 unless a {@link
 * KeylessDecryptParameterSpec} says otherwise. The service's implicit rejection means a bad
 * ciphertext yields random bytes, never BadPaddingException: the Finished check then fails, as
 * RFC 5246 section 7.4.7.1 wants.
 */
final class KeylessRsaCipherSpi extends CipherSpi {
  private KeylessPrivateKey key;
  private int mode;
  private int plaintextLength = KeylessDecryptParameterSpec.TLS_PREMASTER_SECRET_LENGTH;
  private final ByteArrayOutputStream input = new ByteArrayOutputStream();

  @Override
  protected void engineSetMode(String mode) throws NoSuchAlgorithmException {
    if (!mode.equalsIgnoreCase("ECB") && !mode.equalsIgnoreCase("NONE")) {
      throw new NoSuchAlgorithmException("RSA has no mode " + mode);
    }
  }

  @Override
  protected void engineSetPadding(String padding) throws NoSuchPaddingException {
    if (!padding.equalsIgnoreCase("PKCS1Padding")) {
      throw new NoSuchPaddingException("keyless RSA decrypts PKCS1Padding only, not " + padding);
    }
  }

  @Override
  protected int engineGetBlockSize() {
    return 0;
  }

  @Override
  protected int engineGetOutputSize(int inputLen) {
    return plaintextLength;
  }

  @Override
  protected byte[] engineGetIV() {
    return null;
  }

  @Override
  protected AlgorithmParameters engineGetParameters() {
    return null;
  }

  @Override
  protected void engineInit(int opmode, Key key, SecureRandom random) throws InvalidKeyException {
    try {
      engineInit(opmode, key, (AlgorithmParameterSpec) null, random);
    } catch (InvalidAlgorithmParameterException e) {
      throw new InvalidKeyException(e);
    }
  }

  @Override
  protected void engineInit(int opmode, Key key, AlgorithmParameters params, SecureRandom random)
      throws InvalidKeyException, InvalidAlgorithmParameterException {
    if (params != null) {
      throw new InvalidAlgorithmParameterException("keyless RSA takes a KeylessDecryptParameterSpec, not AlgorithmParameters");
    }
    engineInit(opmode, key, (AlgorithmParameterSpec) null, random);
  }

  @Override
  protected void engineInit(int opmode, Key key, AlgorithmParameterSpec params, SecureRandom random)
      throws InvalidKeyException, InvalidAlgorithmParameterException {
    if (!(key instanceof KeylessPrivateKey)) {
      // Never reached through delayed provider selection (the service accepts only keyless
      // keys); an explicit getInstance with this provider gets a plain refusal.
      throw new InvalidKeyException("the " + KeylessProvider.NAME + " provider takes KeylessPrivateKeys only");
    }
    KeylessPrivateKey k = (KeylessPrivateKey) key;
    if (!"RSA".equals(k.getAlgorithm())) {
      throw new InvalidKeyException("RSA decryption needs an RSA key; " + k.credential().name() + " is " + k.credential().keyType());
    }
    if (opmode != Cipher.DECRYPT_MODE && opmode != Cipher.UNWRAP_MODE) {
      throw new InvalidKeyException("a keyless private key only decrypts and unwraps");
    }
    if (!k.credential().decrypts()) {
      throw new InvalidKeyException("credential " + k.credential().name()
          + " may not decrypt (an RSA key whose certificate allows keyEncipherment may; the policy needs a decrypt grant)");
    }
    int length = KeylessDecryptParameterSpec.TLS_PREMASTER_SECRET_LENGTH;
    if (params instanceof KeylessDecryptParameterSpec) {
      length = ((KeylessDecryptParameterSpec) params).plaintextLength();
    } else if (params != null && opmode == Cipher.DECRYPT_MODE) {
      throw new InvalidAlgorithmParameterException("keyless RSA decryption takes a KeylessDecryptParameterSpec");
    }
    // In UNWRAP_MODE another spec is JSSE's TlsRsaPremasterSecretParameterSpec (an internal
    // class): the premaster secret is 48 bytes whatever its version.
    this.key = k;
    this.mode = opmode;
    this.plaintextLength = length;
    input.reset();
  }

  @Override
  protected byte[] engineUpdate(byte[] in, int offset, int length) {
    input.write(in, offset, length);
    return new byte[0];
  }

  @Override
  protected int engineUpdate(byte[] in, int offset, int length, byte[] out, int outOffset) {
    input.write(in, offset, length);
    return 0;
  }

  @Override
  protected byte[] engineDoFinal(byte[] in, int offset, int length) throws IllegalBlockSizeException {
    if (key == null || mode != Cipher.DECRYPT_MODE) {
      throw new IllegalStateException("not initialized for decryption");
    }
    if (in != null) {
      input.write(in, offset, length);
    }
    byte[] ciphertext = input.toByteArray();
    input.reset();
    return decrypt(ciphertext, plaintextLength);
  }

  @Override
  protected int engineDoFinal(byte[] in, int offset, int length, byte[] out, int outOffset)
      throws IllegalBlockSizeException, ShortBufferException {
    if (out.length - outOffset < plaintextLength) {
      throw new ShortBufferException("needs " + plaintextLength + " bytes of output");
    }
    byte[] plaintext = engineDoFinal(in, offset, length);
    System.arraycopy(plaintext, 0, out, outOffset, plaintext.length);
    Arrays.fill(plaintext, (byte) 0);
    return plaintextLength;
  }

  @Override
  protected Key engineUnwrap(byte[] wrappedKey, String wrappedKeyAlgorithm, int wrappedKeyType)
      throws InvalidKeyException, NoSuchAlgorithmException {
    if (key == null || mode != Cipher.UNWRAP_MODE) {
      throw new IllegalStateException("not initialized for unwrapping");
    }
    if (wrappedKeyType != Cipher.SECRET_KEY) {
      throw new InvalidKeyException("keyless RSA unwraps secret keys only");
    }
    byte[] plaintext;
    try {
      plaintext = decrypt(wrappedKey, plaintextLength);
    } catch (IllegalBlockSizeException e) {
      throw new InvalidKeyException(e.getMessage(), e);
    }
    try {
      return new SecretKeySpec(plaintext, wrappedKeyAlgorithm);
    } finally {
      Arrays.fill(plaintext, (byte) 0);
    }
  }

  private byte[] decrypt(byte[] ciphertext, int length) throws IllegalBlockSizeException {
    try {
      return key.client().decrypt(key.ref(), ciphertext, length);
    } catch (KeylessException e) {
      // The status, never the data: Decrypt's statuses do not depend on the ciphertext's padding.
      IllegalBlockSizeException failure = new IllegalBlockSizeException(
          "keyless decryption with " + key.credential().name() + " failed: " + e.getMessage());
      failure.initCause(e);
      throw failure;
    }
  }

  @Override
  protected int engineGetKeySize(Key key) throws InvalidKeyException {
    if (key instanceof KeylessPrivateKey.Rsa) {
      return ((KeylessPrivateKey.Rsa) key).getModulus().bitLength();
    }
    throw new InvalidKeyException("not a keyless RSA key");
  }
}

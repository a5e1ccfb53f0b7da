// SPDX-License-Identifier: MIT
// Bundle-time stand-in for the `socks` package (build.sh aliases it here). mqtt.js loads it
// only for SOCKS proxy URLs, which postern does not offer (docs/config.md "mqtt"); leaving
// it and its ip-address dependency out keeps postern.js under the board size budget
// (issue 8: <= 600 KB minified).

export const SocksClient = {
  createConnection(): never {
    throw new Error('postern: SOCKS proxies for MQTT are not supported');
  },
};

// js-ipfs 0.66's dependencies call Promise.withResolvers, which Node only has from 22 on.
// Loaded with NODE_OPTIONS=--require so it runs before any of them.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new this((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

#pragma once

// AsyncReadBounded: reads one HTTP message (request or response) with Beast so
// that its body never holds more than `body_limit` bytes, whatever the peer
// declares. Every place Treaty reads an HTTP message from a peer uses it.
//
// Why not plain http::async_read with parser.body_limit()? In Boost 1.74,
// async_read parses eagerly, and when body bytes arrive in the same read as
// the header, basic_parser::put drops the body_limit error finish_header set
// and goes on: for a response it initialises the body with the declared
// Content-Length (string_body reserves all of it, so 999999999999 asks for
// ~1 TB); for a request it parses the body bytes as more header fields.
// Reading the header alone (not eager) stops right after finish_header, so
// the declared length is checked before any body storage exists.
//
// Contract:
// - `parser` must be fresh (nothing parsed yet); its body_limit is set to
//   `body_limit`. It, `stream` and `buffer` must outlive the operation.
// - `handler(beast::error_code, size_t)` is called once, through the
//   stream's executor (as for http::async_read), never inline.
// - A declared Content-Length above `body_limit` fails with
//   http::error::body_limit after the header only; no body byte is stored.
//   A chunked body, or one read up to EOF, fails with
//   http::error::body_limit once it passes `body_limit` bytes.
// - On success the parser holds the complete message, as after async_read.

#include <cstdint>
#include <utility>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

namespace treaty {

template <class Stream, class DynamicBuffer, bool isRequest, class Body, class Allocator,
          class Handler>
void AsyncReadBounded(Stream& stream, DynamicBuffer& buffer,
                      boost::beast::http::parser<isRequest, Body, Allocator>& parser,
                      uint64_t body_limit, Handler&& handler) {
  namespace http = boost::beast::http;
  parser.body_limit(body_limit);
  http::async_read_header(
      stream, buffer, parser,
      [&stream, &buffer, &parser, body_limit, handler = std::forward<Handler>(handler)](
          boost::beast::error_code ec, std::size_t bytes) mutable {
        if (!ec) {
          const auto declared = parser.content_length();
          if (declared && *declared > body_limit) ec = http::error::body_limit;
        }
        if (ec) return handler(ec, bytes);
        http::async_read(stream, buffer, parser, std::move(handler));
      });
}

}  // namespace treaty

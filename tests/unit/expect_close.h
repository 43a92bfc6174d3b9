// Element-wise comparison of a backend's float output with a reference, for the backend tests:
// element i passes when |got[i] - want[i]| <= tolerance * (|want[i]| + rms(want)); a NaN or an
// infinity never passes. Reports the first 5 failures and the worst error (in tolerance units
// times the tolerance) as a test message.
#pragma once

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace textscale::testing {

template <typename Want>
void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<Want>& want,
                  double tolerance, const char* got_name = "got", const char* want_name = "reference") {
  BOOST_REQUIRE_EQUAL(got.size(), want.size());
  double squares = 0;
  for (Want w : want) squares += static_cast<double>(w) * static_cast<double>(w);
  const double rms = std::sqrt(squares / static_cast<double>(std::max<std::size_t>(want.size(), 1)));
  int bad = 0;
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i]));
    const double allowed = tolerance * (std::abs(static_cast<double>(want[i])) + rms) + 1e-30;
    worst =
        std::isfinite(got[i]) ? std::max(worst, error / allowed * tolerance) : std::numeric_limits<double>::infinity();
    if (!(error <= allowed) && ++bad <= 5)
      BOOST_ERROR(what << "[" << i << "]: " << got_name << " " << got[i] << " vs " << want_name << " " << want[i]);
  }
  BOOST_TEST_MESSAGE(what << ": " << got.size() << " elements, worst error " << worst);
  BOOST_CHECK_EQUAL(bad, 0);
}

}  // namespace textscale::testing

#include "textscale/cli/options.h"

#include <iostream>

#include "textscale/cli/commands.h"

namespace po = boost::program_options;

namespace textscale::cli {

bool parse_options(const std::vector<std::string>& arguments, const po::options_description& options,
                   po::variables_map& values, const po::positional_options_description* positional) {
  try {
    po::command_line_parser parser(arguments);
    parser.options(options);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), values);
    if (values.count("help")) {
      std::cout << options << "\n";
      return false;
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw UsageError{error.what()};
  }
  return true;
}

}  // namespace textscale::cli

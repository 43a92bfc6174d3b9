// Command-line parsing shared by the subcommands.
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

namespace textscale::cli {

// Parses `arguments` into `values` (parse errors become UsageError) and runs the notifiers.
// Returns false when --help was asked for: the help has been printed and the command should
// return 0.
bool parse_options(const std::vector<std::string>& arguments,
                   const boost::program_options::options_description& options,
                   boost::program_options::variables_map& values,
                   const boost::program_options::positional_options_description* positional = nullptr);

}  // namespace textscale::cli

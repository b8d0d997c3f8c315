#pragma once
// Output names, identical to ssseg.label.inputs: [A-Za-z0-9._-] only, never hidden, unique per job.

#include <string>
#include <vector>

namespace ssseg {

std::string safe_name(const std::string& text, bool allow_underscore = true);
/// Keys for sources named `bases` (file stems / folder names of their absolute paths), made unique in the order
/// of `order` (their absolute paths; empty: as given), so reordered inputs keep their names.
std::vector<std::string> assign_keys(const std::vector<std::string>& bases, const std::vector<std::string>& order = {});
/// Output stems of an image sequence (unique: a.png and a.jpg become a and a-2).
std::vector<std::string> frame_names(const std::vector<std::string>& stems);

}  // namespace ssseg

# cmake -DSOURCE_DIR=... -DBUILD_DIR=... -P drop-moved-build.cmake
# A copied or moved checkout carries a CMake build folder whose cache names the old directories, and
# CMake refuses to configure it ("CMakeCache.txt directory ... is different"). Such a folder is
# removed here, before configuring, so the native libraries are rebuilt from scratch in the new place.
set(cache "${BUILD_DIR}/CMakeCache.txt")
if(NOT EXISTS "${cache}")
  return()
endif()
file(STRINGS "${cache}" cache_dir REGEX "^CMAKE_CACHEFILE_DIR:INTERNAL=")
file(STRINGS "${cache}" home_dir REGEX "^CMAKE_HOME_DIRECTORY:INTERNAL=")
string(REGEX REPLACE "^[^=]*=" "" cache_dir "${cache_dir}")
string(REGEX REPLACE "^[^=]*=" "" home_dir "${home_dir}")
foreach(var cache_dir home_dir BUILD_DIR SOURCE_DIR)
  get_filename_component(${var} "${${var}}" REALPATH)
endforeach()
if(NOT cache_dir STREQUAL BUILD_DIR OR NOT home_dir STREQUAL SOURCE_DIR)
  message(STATUS "panamoe: ${BUILD_DIR} was configured for ${home_dir} (moved or copied checkout); rebuilding it")
  file(REMOVE_RECURSE "${BUILD_DIR}")
endif()
